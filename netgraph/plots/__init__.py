"""Figures: surviving paths, compression curves and per-layer summaries (PNG/SVG + HTML)."""

from netgraph.plots.layout import alive_edge_count
from netgraph.plots.paths import PanelStats, surviving_path_stats, surviving_paths
from netgraph.plots.style import Written, method_color, method_marker

__all__ = [
    "PanelStats",
    "Written",
    "alive_edge_count",
    "method_color",
    "method_marker",
    "surviving_path_stats",
    "surviving_paths",
]
