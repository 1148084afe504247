"""Surviving paths: the channel graph drawn layer by layer, at one or more sparsity levels.

Alive edges (nonzero, both nodes on an input->output path) are drawn in blue,
width and opacity growing with the log of their path mass (five steps);
dead-but-nonzero edges in grey; alive channels black, dead ones hollow grey;
cut (no alive weight) and collapsed (no weight at all) layers get a vermillion
band. Big graphs are sampled, by one rule for alive and dead edges
(:func:`netgraph.plots.layout.select_edges`), and each panel says what it draws.
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
from netgraph.plots.layout import MAX_EDGES, Layout, PanelEdges, layered_layout, mass_scale, select_edges
from netgraph.plots.spec import FigureSpec, LegendEntry, Panel, Points, Segments, Span
from netgraph.plots.style import ALIVE, CUT, DEAD, DEAD_EDGE, WIDTH_IN, Written, write_figure

_BINS = 5  # path-mass steps of the alive edges
_WIDTH = (0.35, 2.6)
_ALPHA = (0.2, 0.95)
_DECADES = 4.0


@dataclass
class PanelStats:
    """What one panel shows: the edge counts (in the graph and drawn) and the layer marks."""

    label: str
    alive_edges: int  # alive edges of the graph (the analysis' count)
    edges_drawn: int  # alive edges drawn
    dead_edges: int
    dead_edges_drawn: int
    rate: float  # probability an edge is drawn (1: every edge)
    cut_layers: list[str]
    collapsed_layers: list[str]
    disconnected: bool
    log_phi: float

    @property
    def exact(self) -> bool:
        return self.rate >= 1.0


def _unpack(snapshot) -> tuple[str, ChannelGraph, Flows, ConnectivityReport]:
    if len(snapshot) == 4:
        label, graph, result, report = snapshot
    else:
        (label, graph, result), report = snapshot, None
    return str(label), graph, result, report if report is not None else analyze(graph, result)


def _node_size(graph: ChannelGraph, height_pt: float, width_pt: float) -> np.ndarray:
    """Marker diameter (pt) per node: at most 60% of its group's channel spacing
    and 40% of the column spacing."""
    sizes = np.array([g.size for g in graph.groups], dtype=np.float64)
    diameter = np.minimum(0.6 * height_pt / sizes, 0.4 * width_pt / max(len(graph.groups), 1))
    return np.clip(diameter, 0.25, 4.7)[graph.node_group]


def _segments(layout: Layout, src: np.ndarray, dst: np.ndarray, **style) -> Segments:
    return Segments(layout.node_x[src], layout.node_y[src], layout.node_x[dst], layout.node_y[dst], **style)


def paths_panel(label: str, graph: ChannelGraph, result: Flows, report: ConnectivityReport, edges: PanelEdges,
                mass_top: float, height_pt: float = 220.0, width_pt: float = 600.0) -> Panel:
    """One level's panel: edges by path-mass step, channels, cut/collapsed bands,
    ticks with layer names and widths, and a subtitle saying what is drawn."""
    layout = layered_layout(graph)
    status = "disconnected (φ = 0)" if result.disconnected else f"log φ = {result.log_phi:.1f}"
    ticks = layout.ticks(12)
    panel = Panel(title=label, subtitle=f"{edges.describe()}\n{status}",
                  xlabel="layer (width), input → output" if all(t.endswith(")") for t in ticks[1]) else
                  "layer, input → output",
                  ylabel="channels (spread evenly per layer)", grid=False, hide_yaxis=True,
                  xlim=(layout.group_x[0] - 0.5, layout.group_x[-1] + 0.5), ylim=(-0.03, 1.03),
                  xticks=ticks, xtick_rotation=45)
    marks = {g: "cut" for g in edges.cut_groups}
    marks.update({g: "collapsed" for g in edges.collapsed_groups})
    for group, kind in sorted(marks.items()):
        x = float(layout.group_x[group])
        panel.add(Span(x - 0.32, x + 0.32, name=layout.names[group], role=kind, color=CUT, alpha=0.15, text=kind,
                       text_color=CUT))
    if edges.n_dead_drawn:
        panel.add(_segments(layout, edges.dead_src, edges.dead_dst, name="dead edges", role="dead", color=DEAD_EDGE,
                            linewidth=0.35, alpha=0.6))
    thin = float(np.clip(math.sqrt(400.0 / max(edges.n_alive_drawn, 1)), 0.3, 1.0))
    steps = np.minimum((mass_scale(edges.alive_mass, mass_top, _DECADES) * _BINS).astype(int), _BINS - 1)
    for step in range(_BINS):
        sel = steps == step
        if sel.any():
            t = (step + 0.5) / _BINS
            panel.add(_segments(layout, edges.alive_src[sel], edges.alive_dst[sel],
                                name=f"alive edges, path-mass step {step + 1}/{_BINS}", role="alive", color=ALIVE,
                                linewidth=thin * (_WIDTH[0] + (_WIDTH[1] - _WIDTH[0]) * t),
                                alpha=_ALPHA[0] + (_ALPHA[1] - _ALPHA[0]) * t))
    size = _node_size(graph, height_pt, width_pt)
    alive = result.alive
    group_names = np.array(layout.names, dtype=object)[graph.node_group]
    local = np.concatenate([np.arange(g.size) for g in graph.groups])
    hover = graph.n_nodes <= 5000
    for is_alive in (False, True):
        sel = alive == is_alive
        if sel.any():
            panel.add(Points(layout.node_x[sel], layout.node_y[sel], name="alive channels" if is_alive
                             else "dead channels", role="alive nodes" if is_alive else "dead nodes",
                             color="#000000" if is_alive else DEAD, hollow=not is_alive, size=size[sel],
                             hover=[f"{g}[{i}]" + ("" if is_alive else " (dead)")
                                    for g, i in zip(group_names[sel], local[sel])] if hover else None))
    return panel


def legend_entries() -> list[LegendEntry]:
    return [
        LegendEntry("alive edge, high path mass", ALIVE, linewidth=_WIDTH[1], alpha=_ALPHA[1]),
        LegendEntry("alive edge, low path mass", ALIVE, linewidth=_WIDTH[0] + 0.3, alpha=0.45),
        LegendEntry("dead edge (nonzero, on no path)", DEAD_EDGE, linewidth=1.0),
        LegendEntry("alive channel", "#000000", "o", "none"),
        LegendEntry("dead channel", DEAD, "o", "none", hollow=True),
        LegendEntry("cut / collapsed layer", CUT, patch=True, alpha=0.25),
    ]


def paths_spec(
    snapshots: Sequence[tuple],
    *,
    title: str | None = None,
    subtitle: str = "",
    name: str = "surviving_paths",
    max_edges: int | None = MAX_EDGES,
    max_cols: int | None = None,
    seed: int = 0,
) -> FigureSpec:
    """The surviving-paths figure of ``snapshots``: ``(label, graph, flows)`` or
    ``(label, graph, flows, report)`` per level, one panel each. ``.info['panels']``
    holds one :class:`PanelStats` dict per panel."""
    if not snapshots:
        raise ValueError("paths_spec needs at least one (label, graph, flows) snapshot")
    items = [_unpack(s) for s in snapshots]
    chosen = [select_edges(g, f, r, max_edges=max_edges, seed=seed) for _, g, f, r in items]
    masses = [e.alive_mass.max() for e in chosen if e.n_alive_drawn and e.alive_mass.max() > 0]
    top = float(np.log10(max(masses))) if masses else 0.0
    columns = max(len(g.groups) for _, g, _, _ in items)
    if max_cols is None:
        max_cols = 4 if columns <= 8 else 3 if columns <= 16 else 2 if columns <= 40 else 1
    cols = min(len(items), max_cols)
    rows = math.ceil(len(items) / cols)
    width_pt, height_pt = 72 * WIDTH_IN / cols * 0.85, 72 * 2.2
    panels = [paths_panel(label, g, f, r, e, top, height_pt, width_pt) for (label, g, f, r), e in zip(items, chosen)]
    stats = [PanelStats(label, e.n_alive, e.n_alive_drawn, e.n_dead, e.n_dead_drawn, e.rate, list(r.cut_layers),
                        list(r.collapsed_layers), bool(f.disconnected), float(f.log_phi))
             for (label, _, f, r), e in zip(items, chosen)]
    notes = [(f"Up to {max_edges:,} edges per panel every edge is drawn; above, each edge with the same probability, "
              "alive or dead, so the drawn alive:dead ratio is the true one.")] if max_edges is not None else []
    return FigureSpec(name, title or "Surviving input→output paths", panels, subtitle=subtitle, cols=cols, notes=notes,
                      legend=legend_entries(), legend_cols=3, width_in=WIDTH_IN, height_in=3.9 * rows + 1.1,
                      info={"panels": [asdict(s) for s in stats]})


def surviving_paths(
    snapshots: Sequence[tuple],
    out_dir: str | os.PathLike,
    name: str = "surviving_paths",
    *,
    title: str | None = None,
    subtitle: str = "",
    formats: Sequence[str] = ("png",),
    plotlyjs: bool | str | os.PathLike = "directory",
    max_edges: int | None = MAX_EDGES,
    max_cols: int | None = None,
) -> Written:
    """Write :func:`paths_spec` as PNG (+ ``formats``) and HTML."""
    spec = paths_spec(snapshots, title=title, subtitle=subtitle, name=name, max_edges=max_edges, max_cols=max_cols)
    return write_figure(spec, out_dir, formats, plotlyjs)


def surviving_path_stats(written: Written | FigureSpec) -> list[PanelStats]:
    """The per-panel :class:`PanelStats` of a :func:`surviving_paths` result or a :func:`paths_spec`."""
    return [PanelStats(**p) for p in written.info.get("panels", [])]


__all__ = ["PanelStats", "legend_entries", "paths_panel", "paths_spec", "surviving_path_stats", "surviving_paths"]
