"""The channel graph as an explicit edge list, a networkx DiGraph or a GraphML file.

Edges are the nonzero entries of every block's CSR matrix (:meth:`Block.matrix`):
one edge per (source node, destination node) pair of a parametric, diagonal or
structural block, its weight the aggregated kernel slice (``how``, default l1).
An edge is *alive* when it is nonzero and both of its nodes are alive (on an
input->output path); its *path mass* is ``F_u w_uv B_v / phi``, the share of the
path sum crossing it (0 when the network is disconnected).

This is the one place that materialises edges; the figures (:mod:`netgraph.plots`)
read the same tables, so a figure's edge count is the analysis' edge count.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netgraph.atomic import atomic_write
from netgraph.connectivity.propagate import Flows, path_mass
from netgraph.connectivity.propagate import flows as compute_flows
from netgraph.graph.channels import Block, ChannelGraph
from netgraph.graph.weights import Aggregation


@dataclass
class BlockEdges:
    """The nonzero edges of one block (parallel arrays, CSR order)."""

    block: Block
    src: np.ndarray  # global node ids
    dst: np.ndarray  # global node ids
    weight: np.ndarray  # float64, NaN/Inf kept as read
    path_mass: np.ndarray  # float64 share of phi, 0 where undefined
    alive: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.src)

    @property
    def n_alive(self) -> int:
        return int(self.alive.sum())


def block_edges(block: Block, result: Flows, how: Aggregation = "l1") -> BlockEdges:
    """Nonzero edges of ``block`` with their weight, path mass and alive flag."""
    coo = block.matrix(how).tocoo()
    keep = coo.data != 0  # explicit zeros are not edges; NaN/Inf are (as in reachability)
    rows, cols, weight = coo.row[keep], coo.col[keep], coo.data[keep]
    dst = block.dst.offset + rows.astype(np.int64)
    src = block.src[cols].astype(np.int64)
    alive_nodes = result.alive
    alive = alive_nodes[src] & alive_nodes[dst]
    mass = path_mass(result.log_forward[src], result.log_backward[dst], result.log_phi, weight)
    order = np.lexsort((src, dst))
    return BlockEdges(block, src[order], dst[order], weight[order], mass[order], alive[order])


def iter_block_edges(graph: ChannelGraph, result: Flows, how: Aggregation = "l1") -> Iterator[BlockEdges]:
    """:func:`block_edges` of every block, in topological order."""
    for block in graph.blocks:
        yield block_edges(block, result, how)


def alive_edge_count(graph: ChannelGraph, result: Flows | None = None) -> int:
    """Number of alive edges: nonzero CSR entries of every block (param, diag and
    struct) whose two nodes are alive."""
    result = result if result is not None else compute_flows(graph)
    alive_nodes = result.alive
    total = 0
    for block in graph.blocks:
        coo = block.matrix().tocoo()
        keep = coo.data != 0
        dst = block.dst.offset + coo.row[keep]
        src = block.src[coo.col[keep]]
        total += int((alive_nodes[src] & alive_nodes[dst]).sum())
    return total


def to_networkx(graph: ChannelGraph, result: Flows | None = None, alive_only: bool = False, how: Aggregation = "l1"):
    """The channel graph as a ``networkx.DiGraph`` (node ids are graph node ids).

    Parameters
    ----------
    graph : ChannelGraph
    result : Flows, optional
        Its flows (computed when not given).
    alive_only : bool
        Keep only nodes and edges on an input->output path.
    how : {"l1", "l2", "count"}
        Edge aggregation of kernel slices, as in :func:`netgraph.flows`.

    Returns
    -------
    networkx.DiGraph

    Node attributes: ``group`` (group name), ``kind`` (input/param/diag/struct),
    ``layer`` (topological position of the group), ``index`` (channel within the
    group), ``alive``, ``centrality`` (F B / phi), ``input``/``output`` flags.
    Edge attributes: ``weight``, ``path_mass``, ``layer`` (block name), ``kind``
    (param/diag/struct), ``alive``. With ``alive_only`` only alive nodes and
    edges are kept.

    Examples
    --------
    >>> import networkx as nx, netgraph as ng
    >>> from torch import nn
    >>> digraph = ng.to_networkx(ng.trace(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2)), input_shape=(4,)))
    >>> digraph.number_of_nodes(), digraph.number_of_edges(), nx.is_directed_acyclic_graph(digraph)
    (9, 18, True)
    """
    import networkx as nx

    result = result if result is not None else compute_flows(graph, how)
    alive = result.alive
    centrality = result.centrality()
    is_input = np.zeros(graph.n_nodes, dtype=bool)
    is_input[graph.input_nodes] = True
    is_output = np.zeros(graph.n_nodes, dtype=bool)
    is_output[graph.output_nodes] = True

    digraph = nx.DiGraph(model=type(graph.model).__name__, log_phi=float(result.log_phi),
                         disconnected=bool(result.disconnected))
    for depth, group in enumerate(graph.groups):
        for index, node in enumerate(group.nodes.tolist()):
            if alive_only and not alive[node]:
                continue
            digraph.add_node(
                node,
                group=group.name,
                kind=group.kind,
                layer=depth,
                index=index,
                alive=bool(alive[node]),
                centrality=float(centrality[node]),
                input=bool(is_input[node]),
                output=bool(is_output[node]),
            )
    for edges in iter_block_edges(graph, result, how):
        keep = edges.alive if alive_only else np.ones(len(edges), dtype=bool)
        block = edges.block
        digraph.add_edges_from(
            (int(u), int(v), {"weight": float(w), "path_mass": float(m), "layer": block.name,
                              "kind": block.kind, "alive": bool(a)})
            for u, v, w, m, a in zip(edges.src[keep], edges.dst[keep], edges.weight[keep],
                                     edges.path_mass[keep], edges.alive[keep])
        )
    return digraph


def write_graphml(graph: ChannelGraph, path: str | os.PathLike, result: Flows | None = None,
                  alive_only: bool = False) -> Path:
    """Write :func:`to_networkx` as GraphML (atomically); return the path."""
    import networkx as nx

    digraph = to_networkx(graph, result, alive_only=alive_only)
    return atomic_write(path, lambda tmp: nx.write_graphml(digraph, tmp))


__all__ = ["BlockEdges", "alive_edge_count", "block_edges", "iter_block_edges", "to_networkx", "write_graphml"]
