"""Where nodes and edges go in a layered drawing of a channel graph, and which edges
are drawn.

* x: one column per node group in topological order (the order blocks were
  created); diagonal (norm) groups sit half a step after the layer they scale.
  Edges therefore always run left to right.
* y: the channels of a group spread evenly over [0, 1] (channel ``i`` of ``n`` at
  ``(i + 0.5) / n``).
* edges: the nonzero CSR entries of every block (:func:`netgraph.connectivity.export.block_edges`).
  Every alive edge is drawn when a panel has at most ``max_exact`` of them; above
  that, only the ``top_k`` alive edges of highest path mass per block (the figure
  says so). Dead-but-nonzero edges are drawn faded, subsampled beyond ``max_dead``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from netgraph.connectivity.export import alive_edge_count, block_edges
from netgraph.connectivity.propagate import Flows
from netgraph.connectivity.report import ConnectivityReport
from netgraph.graph.channels import ChannelGraph, layer_key

MAX_EXACT = 3000
TOP_K = 30
MAX_DEAD = 3000
DIAG_STEP = 0.5


@dataclass
class Layout:
    """Positions of every node and the column of every group."""

    group_x: np.ndarray
    node_x: np.ndarray
    node_y: np.ndarray
    names: list[str]
    kinds: list[str]

    def ticks(self, max_labels: int = 12) -> tuple[list[float], list[str]]:
        """x positions and names of the columns worth a label.

        Every input, parametric layer and join when they are few; otherwise the
        first column of each module prefix (``layer1``, ``layer2.0``...) at the
        deepest prefix level that still fits ``max_labels``; otherwise every
        n-th column."""
        wanted = [i for i, k in enumerate(self.kinds) if k != "diag"]
        if len(wanted) <= max_labels:
            return [float(self.group_x[i]) for i in wanted], [self.names[i] for i in wanted]
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
    return Layout(group_x, node_x, node_y, [g.name for g in graph.groups], [g.kind for g in graph.groups])


@dataclass
class PanelEdges:
    """The edges one panel draws, and how they relate to the graph's edges."""

    alive_src: np.ndarray
    alive_dst: np.ndarray
    alive_mass: np.ndarray
    dead_src: np.ndarray
    dead_dst: np.ndarray
    n_alive: int  # alive edges in the graph
    n_dead: int  # nonzero edges on no input->output path
    exact: bool  # True: every alive edge is drawn
    top_k: int | None  # edges kept per block when not exact
    cut_groups: list[int] = field(default_factory=list)  # group indices of cut layers
    collapsed_groups: list[int] = field(default_factory=list)

    @property
    def n_alive_drawn(self) -> int:
        return len(self.alive_src)

    @property
    def n_dead_drawn(self) -> int:
        return len(self.dead_src)


def _top(mass: np.ndarray, k: int) -> np.ndarray:
    if len(mass) <= k:
        return np.arange(len(mass))
    return np.sort(np.argsort(-mass, kind="stable")[:k])


def select_edges(
    graph: ChannelGraph,
    result: Flows,
    report: ConnectivityReport | None = None,
    max_exact: int | None = MAX_EXACT,
    top_k: int = TOP_K,
    max_dead: int = MAX_DEAD,
    seed: int = 0,
) -> PanelEdges:
    """Pick the edges of one panel (see the module docstring); ``max_exact=None``
    draws every alive edge whatever their number."""
    rng = np.random.default_rng(seed)
    alive_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    dead_parts: list[tuple[np.ndarray, np.ndarray, float]] = []
    n_alive = n_dead = 0
    exact = True
    for block in graph.blocks:
        edges = block_edges(block, result)
        live = edges.alive
        n_alive += int(live.sum())
        src, dst, mass = edges.src[live], edges.dst[live], edges.path_mass[live]
        if exact and max_exact is not None and n_alive > max_exact:
            exact = False  # switch to top-k: trim what was kept so far
            alive_parts = [(s[i], d[i], m[i]) for s, d, m in alive_parts for i in [_top(m, top_k)]]
        if not exact:
            keep = _top(mass, top_k)
            src, dst, mass = src[keep], dst[keep], mass[keep]
        alive_parts.append((src, dst, mass))
        dead = ~live
        count = int(dead.sum())
        n_dead += count
        if count:
            idx = np.flatnonzero(dead)
            if count > max_dead:
                idx = np.sort(rng.choice(idx, max_dead, replace=False))
            dead_parts.append((edges.src[idx], edges.dst[idx], count / len(idx)))

    dead_src, dead_dst = _subsample_dead(dead_parts, max_dead, rng)
    alive_src = np.concatenate([p[0] for p in alive_parts]) if alive_parts else np.zeros(0, np.int64)
    alive_dst = np.concatenate([p[1] for p in alive_parts]) if alive_parts else np.zeros(0, np.int64)
    alive_mass = np.concatenate([p[2] for p in alive_parts]) if alive_parts else np.zeros(0)
    cut, collapsed = _marked_groups(graph, result, report)
    return PanelEdges(alive_src, alive_dst, alive_mass, dead_src, dead_dst, n_alive, n_dead, exact,
                      None if exact else top_k, cut, collapsed)


def _subsample_dead(parts, max_dead: int, rng) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    src = np.concatenate([p[0] for p in parts])
    dst = np.concatenate([p[1] for p in parts])
    if len(src) > max_dead:
        weights = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
        idx = np.sort(rng.choice(len(src), max_dead, replace=False, p=weights / weights.sum()))
        src, dst = src[idx], dst[idx]
    return src, dst


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


__all__ = ["Layout", "PanelEdges", "alive_edge_count", "layered_layout", "mass_scale", "select_edges"]
