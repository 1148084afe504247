"""The channel graph: node groups (one node per channel) and the blocks between them.

Every non-input group is produced by exactly one :class:`Block`, and blocks are
stored in creation order, which is a topological order. A block maps its input
channels to its group's nodes through grouped-form weights (see
:mod:`netgraph.graph.weights`); its input channels are tied to graph nodes by
``(in_chan, in_node)`` pairs, usually one node per channel, several when a
flatten merged spatial features or a concat mixed token sources.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from netgraph.graph.weights import Aggregation, WeightSource

BlockKind = Literal["param", "diag", "struct"]


@dataclass(eq=False)
class NodeGroup:
    """A contiguous range of node ids: the channels of one activation."""

    name: str
    offset: int
    size: int
    kind: Literal["input", "param", "diag", "struct"]

    @property
    def nodes(self) -> np.ndarray:
        return np.arange(self.offset, self.offset + self.size)


@dataclass(eq=False)
class Block:
    """The edges into one node group.

    ``name`` is the layer (module qualname or fx node name); ``source`` gives
    grouped-form weights of shape ``(n_out, in_per_group)``.
    """

    name: str
    kind: BlockKind
    dst: NodeGroup
    groups: int
    in_per_group: int
    in_chan: np.ndarray
    in_node: np.ndarray
    source: WeightSource
    _src: np.ndarray | None = field(default=None, repr=False)
    _pair_col: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_out(self) -> int:
        return self.dst.size

    @property
    def n_in(self) -> int:
        return self.groups * self.in_per_group

    @property
    def src(self) -> np.ndarray:
        """The distinct nodes feeding this block, sorted (columns of :meth:`matrix`)."""
        if self._src is None:
            self._src, self._pair_col = np.unique(self.in_node, return_inverse=True)
        return self._src

    @property
    def pair_col(self) -> np.ndarray:
        """Column in :meth:`matrix` of every ``(in_chan, in_node)`` pair."""
        self.src  # noqa: B018 - fills the cache
        return self._pair_col  # type: ignore[return-value]

    @property
    def one_per_channel(self) -> bool:
        """True when input channel ``j`` is fed by exactly one node (the ``j``-th pair)."""
        return len(self.in_chan) == self.n_in and bool(np.all(self.in_chan == np.arange(self.n_in)))

    @property
    def n_edges(self) -> int:
        """Distinct ``(src node, output node)`` pairs: the nonzeros :meth:`matrix` can have."""
        if self.one_per_channel and len(self.src) == self.n_in:
            return self.n_out * self.in_per_group
        per_group = np.unique((self.in_chan // self.in_per_group) * len(self.src) + self.pair_col).size
        return (self.n_out // self.groups) * per_group

    def channel_index(self) -> np.ndarray:
        """``(n_out, in_per_group)`` input-channel index of every grouped-form entry."""
        out_per_group = self.n_out // self.groups
        base = (np.arange(self.n_out) // out_per_group) * self.in_per_group
        return base[:, None] + np.arange(self.in_per_group)[None, :]

    def matrix(self, how: Aggregation = "l1") -> sp.csr_array:
        """The block as a float64 CSR matrix from :attr:`src` nodes to its group's nodes.

        Channels sharing a node (a flatten after a conv) are summed into one edge.
        """
        grouped = self.source.grouped(how).detach().cpu()
        shape = (self.n_out, len(self.src))
        if self.one_per_channel and self.groups == 1 and len(self.src) < self.n_in:
            merged = torch.zeros(shape, dtype=grouped.dtype)
            merged.index_add_(1, torch.from_numpy(self.pair_col), grouped)
            return sp.csr_array(merged.to(torch.float64).numpy())
        grouped = grouped.to(torch.float64)
        if self.one_per_channel and len(self.src) == self.n_in:
            indptr = np.arange(0, grouped.numel() + 1, self.in_per_group)
            indices = self.pair_col[self.channel_index().ravel()]
            return sp.csr_array((grouped.numpy().ravel(), indices, indptr), shape=shape)
        out_per_group = self.n_out // self.groups
        group_of_pair = self.in_chan // self.in_per_group
        rows = group_of_pair[:, None] * out_per_group + np.arange(out_per_group)[None, :]
        values = grouped.numpy()[rows, (self.in_chan % self.in_per_group)[:, None]]
        cols = np.broadcast_to(self.pair_col[:, None], rows.shape)
        return sp.coo_array((values.ravel(), (rows.ravel(), cols.ravel())), shape=shape).tocsr()

    def per_channel(self, node_values: np.ndarray) -> np.ndarray:
        """Input-channel vector from a per-node vector (sums the nodes feeding each channel)."""
        return np.bincount(self.in_chan, weights=node_values[self.in_node], minlength=self.n_in)


@dataclass(eq=False)
class AttentionHeads:
    """The heads of one attention: what head scoring and removal read.

    ``scores`` holds one node per query head (where that head's q and k channels
    meet); ``channels`` the ``n_heads * head_dim`` mixed channels (value channel times
    its head's score), head-major: the input channels of the output projection. Every
    input->output path through the attention crosses exactly one of them, so a head's
    path share is the sum over its ``head_dim`` channels.
    """

    name: str
    scores: NodeGroup
    channels: NodeGroup
    n_heads: int
    n_kv_heads: int
    head_dim: int

    def head_nodes(self, head: int) -> np.ndarray:
        """Node ids of head ``head``'s mixed channels."""
        start = self.channels.offset + head * self.head_dim
        return np.arange(start, start + self.head_dim)


@dataclass(eq=False)
class ChannelGraph:
    """A model seen as a DAG of channels: the one structure every analysis reads.

    Nodes are channels (a Linear feature, a conv channel), grouped per activation
    (:class:`NodeGroup`); :class:`Block` s map one group to the next, in topological
    order, and read their edge weights from the live parameters of ``model`` (so the
    graph stays current after pruning or an optimiser step). Build it with
    :func:`netgraph.trace`.

    Attributes
    ----------
    model : nn.Module
        The traced model (its parameters, not copies, feed the edge weights).
    groups : list of NodeGroup
        Node groups in topological order; node ids are contiguous per group.
    blocks : list of Block
        Parametric, diagonal (norm) and structural maps, in topological order.
    input_nodes, output_nodes : numpy.ndarray
        Node ids of the model's input and output channels.

    Examples
    --------
    >>> import netgraph as ng
    >>> from torch import nn
    >>> graph = ng.trace(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), input_shape=(4,))
    >>> graph.n_nodes, len(graph.input_nodes), len(graph.output_nodes)
    (9, 4, 2)
    >>> list(graph.layers())
    ['0.weight', '2.weight']
    """

    model: nn.Module
    groups: list[NodeGroup]
    blocks: list[Block]
    input_nodes: np.ndarray
    output_nodes: np.ndarray
    #: one entry per attention the tracer recognised (heads as groups)
    heads: list[AttentionHeads] = field(default_factory=list)

    @property
    def n_nodes(self) -> int:
        last = self.groups[-1]
        return last.offset + last.size

    @property
    def node_group(self) -> np.ndarray:
        """Group index of every node."""
        return np.repeat(np.arange(len(self.groups)), [g.size for g in self.groups])

    def param_blocks(self) -> Iterator[Block]:
        return (b for b in self.blocks if b.kind == "param")

    def layers(self) -> dict[str, list[Block]]:
        """Prunable parameters (``module.param``) and the blocks that read them."""
        layers: dict[str, list[Block]] = {}
        for block in self.param_blocks():
            layers.setdefault(layer_key(block), []).append(block)
        return layers

    def n_edges(self) -> int:
        """Channel-level edges (node -> node): the features of a flattened channel share one."""
        return sum(b.n_edges for b in self.blocks)

    def __repr__(self) -> str:
        return (
            f"ChannelGraph({type(self.model).__name__}: {self.n_nodes} nodes, "
            f"{len(self.blocks)} blocks, {len(self.layers())} prunable layers, "
            f"{len(self.input_nodes)} inputs, {len(self.output_nodes)} outputs)"
        )


def layer_key(block: Block) -> str:
    """``module.param`` name of a parametric block's tensor (the prunable layer)."""
    return f"{block.name}.{block.source.param_name}"
