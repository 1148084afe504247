"""Figures: surviving paths, compression curves and per-layer summaries.

Every figure function writes a static matplotlib PNG (plus SVG/PDF via
``formats``) and an interactive plotly HTML into ``out_dir`` and returns the
written paths (a :class:`Written` list, with what was drawn in ``.info``).
HTML files share one ``plotly.min.js`` written next to them (no internet
needed); pass ``plotlyjs=True`` to embed it instead. Methods keep one colour and
marker in every figure (:func:`method_color`, Okabe-Ito palette).
"""

from netgraph.plots.compression import (
    accuracy_vs_compression,
    effective_vs_nominal,
    layer_density_heatmap,
    log_phi_vs_compression,
)
from netgraph.plots.layout import alive_edge_count
from netgraph.plots.model import layer_bars, plot_model
from netgraph.plots.paths import PanelStats, surviving_path_stats, surviving_paths
from netgraph.plots.style import Written, method_color, method_marker

__all__ = [
    "PanelStats",
    "Written",
    "accuracy_vs_compression",
    "alive_edge_count",
    "effective_vs_nominal",
    "layer_bars",
    "layer_density_heatmap",
    "log_phi_vs_compression",
    "method_color",
    "method_marker",
    "plot_model",
    "surviving_path_stats",
    "surviving_paths",
]
