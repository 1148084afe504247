"""Where nodes and edges go in a layered drawing of a channel graph, and which edges
are drawn.

* x: one column per node group in topological order (the order blocks were
  created); diagonal (norm) groups sit half a step after the layer they scale.
  Edges therefore always run left to right.
* y: the channels of a group spread evenly over [0, 1] (channel ``i`` of ``n`` at
  ``(i + 0.5) / n``).
* edges: the nonzero CSR entries of every block (:func:`netgraph.connectivity.export.block_edges`).
  Every edge is drawn when a panel has at most ``max_edges`` of them; above that
  a uniform random sample, by one rule for alive and dead edges (the figure says
  which), so a mostly dead network looks mostly dead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from netgraph.connectivity.export import alive_edge_count, block_edges
from netgraph.connectivity.propagate import Flows
from netgraph.connectivity.report import ConnectivityReport
from netgraph.graph.channels import ChannelGraph, layer_key

MAX_EDGES = 6000
DIAG_STEP = 0.5


@dataclass
class Layout:
    """Positions of every node and the column of every group."""

    group_x: np.ndarray
    node_x: np.ndarray
    node_y: np.ndarray
    names: list[str]
    kinds: list[str]
    sizes: list[int]

    def ticks(self, max_labels: int = 12) -> tuple[list[float], list[str]]:
        """x positions and names of the columns worth a label.

        Every input, parametric layer and join when they are few; otherwise the
        first column of each module prefix (``layer1``, ``layer2.0``...) at the
        deepest prefix level that still fits ``max_labels``; otherwise every
        n-th column."""
        wanted = [i for i, k in enumerate(self.kinds) if k != "diag"]
        if len(wanted) <= max_labels:
            return [float(self.group_x[i]) for i in wanted], [f"{self.names[i]} ({self.sizes[i]:,})" for i in wanted]
        modules = [i for i in wanted if self.kinds[i] in ("input", "param")]
        best: list[tuple[int, str]] = []
        for depth in (1, 2, 3):
            seen: dict[str, int] = {}
            for i in modules:
                seen.setdefault(".".join(self.names[i].split(".")[:depth]), i)
            if len(seen) > max_labels:
                break
            best = [(i, label) for label, i in seen.items()]
        if len(best) >= 3:
            return self._spaced([float(self.group_x[i]) for i, _ in best], [label for _, label in best], max_labels)
        step = int(np.ceil(len(wanted) / max_labels))
        keep = wanted[::step]
        if wanted[-1] not in keep:
            keep[-1] = wanted[-1]
        return self._spaced([float(self.group_x[i]) for i in keep], [self.names[i] for i in keep], max_labels)

    def _spaced(self, xs: list[float], labels: list[str], max_labels: int) -> tuple[list[float], list[str]]:
        """Drop labels closer than 1/(2 max_labels) of the width to the next one (right to left)."""
        gap = (self.group_x[-1] - self.group_x[0]) / (2.5 * max_labels)
        kept_x: list[float] = []
        kept: list[str] = []
        for x, label in zip(reversed(xs), reversed(labels)):
            if not kept_x or kept_x[-1] - x >= gap:
                kept_x.append(x)
                kept.append(label)
        return kept_x[::-1], kept[::-1]


def layered_layout(graph: ChannelGraph) -> Layout:
    xs = []
    x = 0.0
    for i, group in enumerate(graph.groups):
        if i:
            x += DIAG_STEP if group.kind == "diag" else 1.0
        xs.append(x)
    group_x = np.array(xs)
    node_group = graph.node_group
    node_x = group_x[node_group]
    node_y = np.concatenate([(np.arange(g.size) + 0.5) / g.size for g in graph.groups]) if graph.groups else np.zeros(0)
    return Layout(group_x, node_x, node_y, [g.name for g in graph.groups], [g.kind for g in graph.groups],
                  [g.size for g in graph.groups])


@dataclass
class PanelEdges:
    """The edges one panel draws: every nonzero edge when the graph has at most
    ``max_edges`` of them, otherwise each nonzero edge independently with
    probability ``rate``, alive and dead alike (so the drawn alive:dead ratio
    estimates the true one)."""

    alive_src: np.ndarray
    alive_dst: np.ndarray
    alive_mass: np.ndarray
    dead_src: np.ndarray
    dead_dst: np.ndarray
    n_alive: int  # alive edges in the graph
    n_dead: int  # nonzero edges on no input->output path
    rate: float  # probability an edge is drawn (1.0: all)
    cut_groups: list[int] = field(default_factory=list)  # group indices of cut layers
    collapsed_groups: list[int] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.rate >= 1.0

    @property
    def n_alive_drawn(self) -> int:
        return len(self.alive_src)

    @property
    def n_dead_drawn(self) -> int:
        return len(self.dead_src)

    def describe(self) -> str:
        """What the panel draws, in two short lines."""
        if self.exact:
            return f"every edge drawn:\n{self.n_alive:,} alive · {self.n_dead:,} dead"
        return (f"1 in {1 / self.rate:,.0f} edges drawn, alive and dead alike:\n"
                f"{self.n_alive_drawn:,}/{self.n_alive:,} alive · {self.n_dead_drawn:,}/{self.n_dead:,} dead")


def select_edges(
    graph: ChannelGraph,
    result: Flows,
    report: ConnectivityReport | None = None,
    max_edges: int | None = MAX_EDGES,
    seed: int = 0,
) -> PanelEdges:
    """Pick the edges of one panel (see :class:`PanelEdges`); ``max_edges=None``
    draws every edge whatever their number."""
    tables = [block_edges(block, result) for block in graph.blocks]
    total = sum(len(t) for t in tables)
    rate = 1.0 if max_edges is None or total <= max_edges else max_edges / total
    rng = np.random.default_rng(seed)
    alive_parts, dead_parts = [], []
    for edges in tables:
        drawn = rng.random(len(edges)) < rate if rate < 1.0 else np.ones(len(edges), bool)
        live = edges.alive
        alive_parts.append((edges.src[live & drawn], edges.dst[live & drawn], edges.path_mass[live & drawn]))
        dead_parts.append((edges.src[~live & drawn], edges.dst[~live & drawn]))
    n_alive = sum(int(t.alive.sum()) for t in tables)

    def cat(parts, i, dtype=np.int64):
        return np.concatenate([p[i] for p in parts]) if parts else np.zeros(0, dtype)

    cut, collapsed = _marked_groups(graph, result, report)
    return PanelEdges(cat(alive_parts, 0), cat(alive_parts, 1), cat(alive_parts, 2, np.float64), cat(dead_parts, 0),
                      cat(dead_parts, 1), n_alive, total - n_alive, rate, cut, collapsed)


def _marked_groups(
    graph: ChannelGraph, result: Flows, report: ConnectivityReport | None
) -> tuple[list[int], list[int]]:
    """Group indices (columns) of the cut and the collapsed layers."""
    if report is None:
        from netgraph.connectivity.report import analyze

        report = analyze(graph, result)
    index = {id(g): i for i, g in enumerate(graph.groups)}
    columns: dict[str, list[int]] = {}
    for block in graph.param_blocks():
        columns.setdefault(layer_key(block), []).append(index[id(block.dst)])
    cut = sorted({c for name in report.cut_layers for c in columns.get(name, [])})
    collapsed = sorted({c for name in report.collapsed_layers for c in columns.get(name, [])})
    return cut, collapsed


def mass_scale(mass: np.ndarray, top: float | None = None, decades: float = 4.0) -> np.ndarray:
    """Path mass mapped to [0, 1] on a log10 scale from ``top - decades`` to ``top``
    (``top``: log10 of the largest mass, by default of ``mass`` itself)."""
    if len(mass) == 0:
        return np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log10(np.where(mass > 0, mass, np.nan))
    if not np.isfinite(logs).any():
        return np.zeros(len(mass))
    top = np.nanmax(logs) if top is None else top
    t = (logs - (top - decades)) / decades
    return np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0)


__all__ = ["MAX_EDGES", "Layout", "PanelEdges", "alive_edge_count", "layered_layout", "mass_scale", "select_edges"]
