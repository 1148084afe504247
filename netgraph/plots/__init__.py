"""Figures: surviving paths, compression curves and per-layer summaries.

Every figure is described once, backend-neutrally, by a pure function returning a
:class:`~netgraph.plots.spec.FigureSpec` (``accuracy_spec``, ``paths_spec``,
``layer_bars_spec``, ...), then rendered by matplotlib (PNG, SVG/PDF via
``formats``) and by plotly (HTML) into ``out_dir``; the writers
(``accuracy_vs_compression``, ``surviving_paths``, ``plot_model``, ...) return
the written paths (a :class:`Written` list, with what was drawn in ``.info``).
HTML files share one ``plotly.min.js`` (no internet needed): next to them, at a
path given as ``plotlyjs`` (one per output tree), or from the CDN
(``plotlyjs='cdn'``). Methods keep one colour and marker in every figure
(:func:`method_color`, Okabe-Ito palette).
"""

from netgraph.plots.compression import (
    accuracy_spec,
    accuracy_vs_compression,
    density_specs,
    effective_spec,
    effective_vs_nominal,
    layer_density_heatmap,
    log_phi_spec,
    log_phi_vs_compression,
)
from netgraph.plots.layout import alive_edge_count
from netgraph.plots.model import (
    choose_view,
    input_pixels,
    layer_bars,
    layer_bars_spec,
    layer_view_spec,
    pixels_spec,
    plot_model,
)
from netgraph.plots.paths import PanelStats, paths_spec, surviving_path_stats, surviving_paths
from netgraph.plots.spec import FigureSpec, Panel
from netgraph.plots.style import Written, method_color, method_marker, write_figure

__all__ = [
    "FigureSpec",
    "Panel",
    "PanelStats",
    "Written",
    "accuracy_spec",
    "accuracy_vs_compression",
    "alive_edge_count",
    "choose_view",
    "density_specs",
    "effective_spec",
    "effective_vs_nominal",
    "input_pixels",
    "layer_bars",
    "layer_bars_spec",
    "layer_density_heatmap",
    "layer_view_spec",
    "log_phi_spec",
    "log_phi_vs_compression",
    "method_color",
    "method_marker",
    "paths_spec",
    "pixels_spec",
    "plot_model",
    "surviving_path_stats",
    "surviving_paths",
    "write_figure",
]
