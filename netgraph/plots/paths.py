"""Surviving paths: the channel graph drawn layer by layer, at one or more sparsity levels.

Alive edges (nonzero, both nodes on an input->output path) are drawn in blue, their
width and opacity growing with the log of their path mass; dead-but-nonzero edges
in faded grey; alive nodes filled, dead nodes hollow grey; cut (no alive weight) and
collapsed (no weight at all) layers get a vermillion band and label.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from netgraph.connectivity.propagate import Flows
from netgraph.connectivity.report import ConnectivityReport, analyze
from netgraph.graph.channels import ChannelGraph
from netgraph.plots.layout import (
    MAX_DEAD,
    MAX_EXACT,
    TOP_K,
    Layout,
    PanelEdges,
    layered_layout,
    mass_scale,
    select_edges,
)
from netgraph.plots.style import (
    ALIVE,
    CUT,
    DEAD,
    DEAD_EDGE,
    FONT,
    OKABE_ITO,
    WIDTH_IN,
    Written,
    hex_to_rgba,
    mpl_style,
    new_figure,
    plotly_layout,
    prepare_out_dir,
    save_mpl,
    save_plotly,
)

# Alive-edge width/opacity ramp over t = log-scaled path mass in [0, 1].
_WIDTH = (0.35, 2.6)
_ALPHA = (0.18, 0.95)
_HTML_BINS = 5
_DECADES = 4.0


@dataclass
class PanelStats:
    """What one panel shows: the test-facing edge counts and the layer marks."""

    label: str
    alive_edges: int  # alive edges of the graph (the analysis' count)
    edges_drawn: int  # alive edges drawn in the static figure
    edges_drawn_html: int  # alive edges drawn in the interactive figure
    dead_edges: int
    dead_edges_drawn: int
    exact: bool
    top_k: int | None
    cut_layers: list[str]
    collapsed_layers: list[str]
    disconnected: bool
    log_phi: float


@dataclass
class _Panel:
    label: str
    graph: ChannelGraph
    flows: Flows
    report: ConnectivityReport
    layout: Layout
    edges: PanelEdges
    mass_top: float = 0.0  # log10 of the largest alive-edge path mass over all panels

    @property
    def thin(self) -> float:
        """Line-width factor: crowded panels get thinner lines."""
        return float(np.clip(math.sqrt(400.0 / max(self.edges.n_alive_drawn, 1)), 0.3, 1.0))

    def scale(self) -> np.ndarray:
        return mass_scale(self.edges.alive_mass, self.mass_top, _DECADES)


def _unpack(snapshot) -> tuple[str, ChannelGraph, Flows, ConnectivityReport]:
    if len(snapshot) == 4:
        label, graph, result, report = snapshot
    else:
        label, graph, result = snapshot
        report = None
    return str(label), graph, result, report if report is not None else analyze(graph, result)


def _prepare(snapshots, max_exact, top_k, max_dead) -> list[_Panel]:
    panels = []
    for snapshot in snapshots:
        label, graph, result, report = _unpack(snapshot)
        edges = select_edges(graph, result, report, max_exact=max_exact, top_k=top_k, max_dead=max_dead)
        panels.append(_Panel(label, graph, result, report, layered_layout(graph), edges))
    masses = [p.edges.alive_mass.max() for p in panels if p.edges.n_alive_drawn and p.edges.alive_mass.max() > 0]
    top = float(np.log10(max(masses))) if masses else 0.0
    for panel in panels:
        panel.mass_top = top
    return panels


def _subtitle(panel: _Panel, sep: str = " · ") -> str:
    e = panel.edges
    if panel.flows.disconnected:
        status = "disconnected"
    else:
        status = f"log φ = {panel.flows.log_phi:.1f}"
    count = f"{e.n_alive:,} alive edges"
    if not e.exact:
        count += f" (top {e.top_k}/layer drawn)"
    return f"{count}{sep}{status}"


def _segments(layout: Layout, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(n, 2, 2) line segments from node ids."""
    start = np.stack([layout.node_x[src], layout.node_y[src]], 1)
    end = np.stack([layout.node_x[dst], layout.node_y[dst]], 1)
    return np.stack([start, end], 1)


def _node_size(graph: ChannelGraph, height_pt: float = 220.0, width_pt: float = 600.0) -> np.ndarray:
    """Marker area (pt^2) per node: at most 60% of the spacing of its group's
    channels and 40% of the spacing of the columns."""
    sizes = np.array([g.size for g in graph.groups], dtype=np.float64)
    columns = max(len(graph.groups), 1)
    diameter = np.minimum(0.6 * height_pt / sizes, 0.4 * width_pt / columns)
    return np.clip(diameter**2, 0.05, 22.0)[graph.node_group]


def _marks(panel: _Panel) -> list[tuple[int, str]]:
    """(group index, 'cut' or 'collapsed') for every marked column."""
    marks = {g: "cut" for g in panel.edges.cut_groups}
    marks.update({g: "collapsed" for g in panel.edges.collapsed_groups})
    return sorted(marks.items())


# --- matplotlib -------------------------------------------------------------------


def draw_paths_mpl(ax, panel: _Panel, show_ylabel: bool = True, max_labels: int = 12) -> int:
    """Draw one panel on ``ax``; return the number of alive edges drawn."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgba
    from matplotlib.transforms import blended_transform_factory

    layout, edges = panel.layout, panel.edges
    band = blended_transform_factory(ax.transData, ax.transAxes)
    half = 0.32
    for group, kind in _marks(panel):
        x = layout.group_x[group]
        ax.axvspan(x - half, x + half, color=CUT, alpha=0.13, lw=0, zorder=0)
        ax.text(x, 0.995, kind, transform=band, color=CUT, fontsize=FONT - 2, rotation=90,
                ha="center", va="top", fontweight="bold", zorder=5)

    if edges.n_dead_drawn:
        ax.add_collection(LineCollection(_segments(layout, edges.dead_src, edges.dead_dst), colors=DEAD_EDGE,
                                         linewidths=0.35, alpha=0.55, zorder=1, rasterized=True))
    drawn = 0
    if edges.n_alive_drawn:
        t = panel.scale()
        order = np.argsort(t, kind="stable")  # heavy edges on top
        colors = np.tile(to_rgba(ALIVE), (len(t), 1))
        colors[:, 3] = _ALPHA[0] + (_ALPHA[1] - _ALPHA[0]) * t
        collection = LineCollection(
            _segments(layout, edges.alive_src, edges.alive_dst)[order],
            colors=colors[order],
            linewidths=(panel.thin * (_WIDTH[0] + (_WIDTH[1] - _WIDTH[0]) * t))[order],
            zorder=2,
            capstyle="round",
        )
        ax.add_collection(collection)
        drawn = len(collection.get_segments())

    bbox = ax.get_position()
    fig_w, fig_h = ax.figure.get_size_inches()
    size = _node_size(panel.graph, 72 * bbox.height * fig_h, 72 * bbox.width * fig_w)
    alive = panel.flows.alive
    ax.scatter(layout.node_x[~alive], layout.node_y[~alive], s=size[~alive], facecolors="white", edgecolors=DEAD,
               linewidths=0.5, zorder=3, rasterized=len(alive) > 3000)
    crowded = size[alive] < 1.0  # channels of wide layers merge into a line: draw them lighter
    for sel, color in ((crowded, "#555555"), (~crowded, OKABE_ITO["black"])):
        if sel.any():
            ax.scatter(layout.node_x[alive][sel], layout.node_y[alive][sel], s=size[alive][sel], c=color,
                       linewidths=0, zorder=4, rasterized=len(alive) > 3000)

    ticks, names = layout.ticks(max_labels)
    ax.set_xticks(ticks, names, rotation=45, ha="right", rotation_mode="anchor", fontsize=FONT - 2)
    ax.set_xlim(layout.group_x[0] - 0.5, layout.group_x[-1] + 0.5)
    ax.set_ylim(-0.03, 1.03)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    if show_ylabel:
        ax.set_ylabel("channel (evenly spread per layer)")
    ax.set_xlabel("layer (topological order)", fontsize=FONT - 1)
    ax.set_title(panel.label, fontsize=FONT, fontweight="bold", loc="center", pad=24)
    ax.text(0.5, 1.0, _subtitle(panel, "\n"), transform=ax.transAxes, ha="center", va="bottom",
            fontsize=FONT - 2, color="#333333", linespacing=1.1)
    return drawn


def _legend_handles():
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [
        Line2D([], [], color=ALIVE, lw=_WIDTH[1], alpha=_ALPHA[1], label="alive edge, high path mass"),
        Line2D([], [], color=ALIVE, lw=_WIDTH[0] + 0.3, alpha=0.45, label="alive edge, low path mass"),
        Line2D([], [], color=DEAD_EDGE, lw=1.0, label="dead edge (nonzero, on no path)"),
        Line2D([], [], marker="o", ls="", color="black", markersize=5, label="alive channel"),
        Line2D([], [], marker="o", ls="", markerfacecolor="white", markeredgecolor=DEAD, markersize=5,
               label="dead channel"),
        Patch(facecolor=CUT, alpha=0.25, label="cut / collapsed layer"),
    ]


def _static_paths(panels: list[_Panel], title: str, max_cols: int | None) -> tuple[object, list[int]]:
    n_cols_graph = max(len(p.layout.group_x) for p in panels)
    if max_cols is None:
        max_cols = 4 if n_cols_graph <= 8 else 3 if n_cols_graph <= 16 else 2 if n_cols_graph <= 40 else 1
    cols = min(len(panels), max_cols)
    rows = math.ceil(len(panels) / cols)
    height = 3.5 * rows + 0.9 if cols > 1 else 3.1 * rows + 0.9
    fig = new_figure(WIDTH_IN, height)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    drawn = [draw_paths_mpl(ax, panel, show_ylabel=i % cols == 0) for i, (ax, panel) in enumerate(zip(axes, panels))]
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title, fontweight="bold")
    fig.legend(handles=_legend_handles(), loc="outside lower center", ncols=3, fontsize=FONT - 1)
    return fig, drawn


# --- plotly -----------------------------------------------------------------------


def _line_xy(layout: Layout, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y arrays for one scatter trace of segments (NaN-separated)."""
    nan = np.full(len(src), np.nan)
    x = np.stack([layout.node_x[src], layout.node_x[dst], nan], 1).ravel().astype(np.float32)
    y = np.stack([layout.node_y[src], layout.node_y[dst], nan], 1).ravel().astype(np.float32)
    return x, y


def _plotly_traces(panel: _Panel) -> tuple[list[dict], int]:
    """Scatter traces of one panel and the number of alive edges they draw."""
    layout, edges = panel.layout, panel.edges
    traces: list[dict] = []
    if edges.n_dead_drawn:
        x, y = _line_xy(layout, edges.dead_src, edges.dead_dst)
        traces.append(dict(type="scatter", x=x, y=y, mode="lines", hoverinfo="skip", name="dead edges",
                           line=dict(color=DEAD_EDGE, width=0.6), opacity=0.6))
    drawn = 0
    if edges.n_alive_drawn:
        t = panel.scale()
        bins = np.minimum((t * _HTML_BINS).astype(int), _HTML_BINS - 1)
        top = panel.mass_top
        for b in range(_HTML_BINS):
            sel = bins == b
            if not sel.any():
                continue
            mid = (b + 0.5) / _HTML_BINS
            x, y = _line_xy(layout, edges.alive_src[sel], edges.alive_dst[sel])
            low = top - _DECADES + _DECADES * b / _HTML_BINS
            high = low + _DECADES / _HTML_BINS
            name = f"alive edges, path mass ≥ 10^{low:.1f}" if b else f"alive edges, path mass < 10^{high:.1f}"
            traces.append(dict(type="scatter", x=x, y=y, mode="lines", hoverinfo="skip", name=name,
                               line=dict(color=hex_to_rgba(ALIVE, _ALPHA[0] + (_ALPHA[1] - _ALPHA[0]) * mid),
                                         width=panel.thin * (_WIDTH[0] + 0.3 + (_WIDTH[1] + 0.6 - _WIDTH[0]) * mid))))
            drawn += int(sel.sum())
    alive = panel.flows.alive
    size = np.clip(np.sqrt(_node_size(panel.graph, 330.0, 800.0)) * 1.3, 2.0, 10.0).astype(np.float32)
    with_hover = panel.graph.n_nodes <= 5000
    centrality = panel.flows.centrality()
    group_names = np.array(layout.names, dtype=object)[panel.graph.node_group]
    local = np.concatenate([np.arange(g.size) for g in panel.graph.groups])
    for is_alive, name in ((False, "dead channels"), (True, "alive channels")):
        sel = alive == is_alive
        if not sel.any():
            continue
        trace = dict(type="scatter", x=layout.node_x[sel].astype(np.float32), y=layout.node_y[sel].astype(np.float32),
                     mode="markers", name=name,
                     marker=dict(size=size[sel], color="black" if is_alive else "white",
                                 line=dict(color="black" if is_alive else DEAD, width=0 if is_alive else 1)))
        if with_hover:
            trace["text"] = [f"{g}[{i}]" for g, i in zip(group_names[sel], local[sel])]
            if is_alive:
                trace["customdata"] = centrality[sel].astype(np.float32)
                trace["hovertemplate"] = "%{text}<br>centrality %{customdata:.2e}<extra></extra>"
            else:
                trace["hovertemplate"] = "%{text} (dead)<extra></extra>"
        else:
            trace["hoverinfo"] = "skip"
        traces.append(trace)
    return traces, drawn


def _plotly_marks(panel: _Panel) -> tuple[list[dict], list[dict]]:
    shapes, annotations = [], []
    for group, kind in _marks(panel):
        x = float(panel.layout.group_x[group])
        shapes.append(dict(type="rect", xref="x", yref="paper", x0=x - 0.32, x1=x + 0.32, y0=0, y1=1,
                           fillcolor=hex_to_rgba(CUT, 0.15), line=dict(width=0), layer="below"))
        annotations.append(dict(x=x, y=1.0, xref="x", yref="paper", text=f"<b>{kind}</b>", showarrow=False,
                                textangle=-90, yanchor="top", font=dict(color=CUT, size=11)))
    return shapes, annotations


def _interactive_paths(panels: list[_Panel], title: str):
    import plotly.graph_objects as go

    traces: list[dict] = []
    owner: list[int] = []
    drawn: list[int] = []
    for i, panel in enumerate(panels):
        panel_traces, count = _plotly_traces(panel)
        for trace in panel_traces:
            trace["visible"] = i == 0
        traces += panel_traces
        owner += [i] * len(panel_traces)
        drawn.append(count)

    def head(panel: _Panel) -> str:
        return f"{title}<br><sup>{panel.label} — {_subtitle(panel)}</sup>"

    steps = []
    for i, panel in enumerate(panels):
        shapes, annotations = _plotly_marks(panel)
        steps.append(dict(method="update", label=panel.label,
                          args=[{"visible": [o == i for o in owner]},
                                {"title.text": head(panel), "shapes": shapes, "annotations": annotations}]))
    first_shapes, first_annotations = _plotly_marks(panels[0])
    ticks, names = panels[0].layout.ticks(max_labels=24)
    layout = plotly_layout(
        head(panels[0]),
        height=600,
        shapes=first_shapes,
        annotations=first_annotations,
        xaxis=dict(title="layer (topological order)", tickvals=ticks, ticktext=names, tickangle=-45,
                   showgrid=False, zeroline=False),
        yaxis=dict(title="channel (evenly spread per layer)", showticklabels=False, ticks="", showgrid=False,
                   zeroline=False, range=[-0.03, 1.03]),
        legend=dict(orientation="h", yanchor="top", y=-0.28, x=0),
        margin=dict(l=60, r=20, t=80, b=200),
        sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="level: "), pad=dict(t=100), len=1.0)]
        if len(panels) > 1 else [],
    )
    fig = go.Figure(data=traces, layout=layout)
    return fig, drawn


# --- public -----------------------------------------------------------------------


def surviving_paths(
    snapshots: Sequence[tuple],
    out_dir: str | os.PathLike,
    name: str = "surviving_paths",
    *,
    title: str | None = None,
    formats: Sequence[str] = ("png",),
    plotlyjs: bool | str = "directory",
    max_exact: int | None = MAX_EXACT,
    top_k: int = TOP_K,
    max_dead: int = MAX_DEAD,
    max_cols: int | None = None,
) -> Written:
    """Draw the surviving paths at several sparsity levels.

    ``snapshots``: ``(label, graph, flows)`` or ``(label, graph, flows, report)``
    per level (e.g. ``('10^1.5 x', graph, flows)``). The PNG shows one panel per
    level side by side, the HTML one level at a time with a slider. Every alive
    edge is drawn when a panel has at most ``max_exact`` (``None``: always);
    otherwise the ``top_k`` alive edges of highest path mass per block, as the
    panel title says. Returns the written paths; ``.info['panels']`` holds one
    :class:`PanelStats` dict per level and ``.info['edges_drawn']`` the number
    of alive edges drawn per panel.
    """
    if not snapshots:
        raise ValueError("surviving_paths needs at least one (label, graph, flows) snapshot")
    out = prepare_out_dir(out_dir)
    panels = _prepare(snapshots, max_exact, top_k, max_dead)
    title = title or "Surviving input→output paths"
    with mpl_style():
        fig, drawn = _static_paths(panels, title, max_cols)
        paths = save_mpl(fig, out, name, formats)
    html_fig, drawn_html = _interactive_paths(panels, title)
    paths.append(save_plotly(html_fig, out, name, plotlyjs))
    stats = [_stats(p, d, dh) for p, d, dh in zip(panels, drawn, drawn_html)]
    return Written(paths, {"panels": [asdict(s) for s in stats], "edges_drawn": drawn, "edges_drawn_html": drawn_html,
                           "alive_edges": [p.edges.n_alive for p in panels]})


def _stats(panel: _Panel, drawn: int, drawn_html: int) -> PanelStats:
    return PanelStats(
        label=panel.label,
        alive_edges=panel.edges.n_alive,
        edges_drawn=drawn,
        edges_drawn_html=drawn_html,
        dead_edges=panel.edges.n_dead,
        dead_edges_drawn=panel.edges.n_dead_drawn,
        exact=panel.edges.exact,
        top_k=panel.edges.top_k,
        cut_layers=list(panel.report.cut_layers),
        collapsed_layers=list(panel.report.collapsed_layers),
        disconnected=bool(panel.flows.disconnected),
        log_phi=float(panel.flows.log_phi),
    )


def surviving_path_stats(written: Written) -> list[PanelStats]:
    """The per-panel :class:`PanelStats` of a :func:`surviving_paths` result."""
    return [PanelStats(**p) for p in written.info.get("panels", [])]


__all__ = ["PanelStats", "draw_paths_mpl", "surviving_path_stats", "surviving_paths"]
