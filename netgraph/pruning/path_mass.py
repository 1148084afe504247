"""CoNNect as an unstructured pruning score: each weight's share of path mass.

The weight score is ``F_u |w| B_v / phi`` (data-free,
:func:`netgraph.connect.scores.connect_scores`) in CoNNect's normalised graph with
balanced joins (:func:`netgraph.connect.scores.score_flows`). A layer every path
crosses carries all the path mass, one of ``n`` branches into a residual add about
``1/n`` of it, however much of the layer is pruned, so a layer's last weights carry a
large share: iterated on SynFlow's exponential schedule the score keeps every layer,
parallel branches included (ResNet-20 at init: no layer collapses below ``10^3.6`` in
5 seeds; without balanced joins a 1x1 projection shortcut collapsed at ``10^2.6``-``10^2.9``
in 3 of them). Iterating needs no per-round pass over pruned weights (:func:`iterate_connect`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from netgraph.connect.scores import connect_scores, finite_scores, score_flows
from netgraph.connectivity.propagate import Flows, edge_share
from netgraph.errors import NetgraphError
from netgraph.graph.cache import cached_trace
from netgraph.graph.channels import Block, ChannelGraph
from netgraph.parameters import Param, effective_weight, reuse_weights
from netgraph.pruning.masks import (
    Scope,
    check_scope,
    current_masks,
    select_alive,
    sync_weights,
)
from netgraph.pruning.methods import iterate_scores
from netgraph.pruning.scores import ScoreContext


def _graph_and_keys(model: nn.Module, params: Sequence[Param], ctx: ScoreContext) -> tuple[ChannelGraph, list[str]]:
    """The model's (cached) channel graph and each param's layer key in it."""
    if ctx.input_shape is None:
        raise NetgraphError("the connect score needs the model's input shape")
    names = {module: name for name, module in model.named_modules()}
    return cached_trace(model, ctx.input_shape), [f"{names[module]}.{name}" for module, name in params]


def connect_score(model: nn.Module, params: Sequence[Param], ctx: ScoreContext) -> list[torch.Tensor]:
    """Data-free CoNNect score of every weight in ``params`` (higher = keep)."""
    graph, keys = _graph_and_keys(model, params, ctx)
    with torch.no_grad(), reuse_weights():  # flows and scores read each weight once
        scores = connect_scores(graph, score_flows(graph))
    out = []
    for (module, name), key in zip(params, keys):
        score = scores.get(key)
        if score is None:  # built only when missing (not as an eagerly evaluated default)
            score = torch.zeros(module.get_parameter(f"{name}_orig" if hasattr(module, f"{name}_orig") else name).shape)
        out.append(score.to(ctx.device))
    return out


def iterate_connect(
    model: nn.Module, params: Sequence[Param], keeps: Sequence[int], ctx: ScoreContext, scope: Scope
) -> list[torch.Tensor]:
    """The masks of re-scoring with :func:`connect_score` every round, at a fraction of the cost.

    A weight's score is ``|w|`` times its edge's share ``F_u B_v / phi``; only the
    channel-level flows change between rounds. So the loop keeps the flat index,
    ``|w|`` and edge of the unpruned weights of all layers in one set of arrays,
    scores and ranks only those, and zeroes just the removed entries of the mask:
    the work of round ``k`` shrinks with the weights left (the plain loop's stays at
    the full model), and so do the edge shares it computes (only edges that still hold
    weights). The flows read ``|w|`` kept up to date in place, not
    ``w_orig * w_mask`` rebuilt every round. It runs on one torch thread: its passes
    are memory-bound or small, and each of the ~550 ops per round (VGG-16) large enough
    for OpenMP to split would, on a busy machine, wait for a descheduled thread (2
    threads were 4x slower than 1 under load). Layers read by several blocks or none
    take the plain loop."""
    check_scope(scope)  # before any mask is registered
    graph, keys = _graph_and_keys(model, params, ctx)
    layers = graph.layers()
    found = [layers.get(key, []) for key in keys]
    if any(len(blocks) != 1 or blocks[0].source.region() != (slice(None),) for blocks in found):
        return iterate_scores(connect_score, model, params, keeps, ctx, scope)
    for module, name in params:  # every param gets a mask buffer to zero in place
        if not hasattr(module, f"{name}_mask"):
            prune.identity(module, name)
    sizes = [getattr(module, name).numel() for module, name in params]
    with torch.no_grad(), torch_threads(1):
        alive = _AliveWeights(graph, params, [blocks[0] for blocks in found])
        for keep in keeps:
            with reuse_weights():  # the flows and the block gains read each weight once
                scores = alive.scores(score_flows(alive.graph))
            segments = [scores] if scope == "global" else list(scores.split(alive.segments))
            kept = select_alive(segments, keep, scope, sizes, alive=alive.counts)
            alive.keep_only(kept[0] if scope == "global" else torch.cat(kept))
    sync_weights(model)
    return current_masks(params)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` inside the block, the caller's setting after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: Compact the arrays once pruned entries fill this fraction of them: a compaction
#: copies every entry, a marked entry costs a few passes per round until then
#: (SynFlow's schedule to 100x in 100 rounds marks ~4.5% per round: one compaction
#: every ~6 rounds).
_COMPACT_AT = 0.25


class _AliveWeights:
    """The unpruned weights of every layer, in one set of flat arrays.

    Layer after layer, each layer's entries in flat-index order: ``index`` (int32
    where it fits), ``magnitude`` (``|w|``, float64) and ``edge`` (the position of the
    entry's grouped-form edge in ``share``, which holds the edges that had an unpruned
    weight at the last compaction: late rounds score a fraction of the edges). A pruned
    weight is not removed at once: its edge becomes a sentinel of share -1 and its
    magnitude 1, so it scores -1, below every unpruned weight (scores are >= 0), its
    ``unpruned`` flag goes False, and the arrays are compacted only when such entries
    fill :data:`_COMPACT_AT` of them. The flows read ``graph``: the model's graph with
    each pruned layer read from ``|w|`` kept here, zeroed in place as weights go (``|w|``
    aggregates to the same edge weights as ``w`` in every aggregation)."""

    def __init__(self, graph: ChannelGraph, params: Sequence[Param], blocks: Sequence[Block]) -> None:
        self.masks = [getattr(module, f"{name}_mask") for module, name in params]
        self.weights = [effective_weight(module, name).detach().abs().contiguous() for module, name in params]
        readers = {id(block): _reading(block, weight) for block, weight in zip(blocks, self.weights)}
        self.graph = dataclasses.replace(graph, blocks=[readers.get(id(b), b) for b in graph.blocks])
        self.blocks = [readers[id(block)] for block in blocks]
        n_edges = [block.n_out * block.in_per_group for block in blocks]
        self.edge_start = np.cumsum([0, *n_edges])  # of each layer in the numbering of all edges
        self.all_shares = torch.empty(self.edge_start[-1] + 1, dtype=torch.float64)  # share is a view
        index_type = torch.int32 if max(m.numel() for m in self.masks) < 2**31 else torch.int64
        edge_type = torch.int32 if len(self.all_shares) < 2**31 else torch.int64
        # filled layer by layer in place (no concatenation of per-layer copies)
        indices = [torch.from_numpy(np.flatnonzero(mask.detach().reshape(-1).cpu().numpy())) for mask in self.masks]
        self.counts = [len(index) for index in indices]  # unpruned weights per layer
        self.index = torch.empty(sum(self.counts), dtype=index_type)
        self.magnitude = torch.empty(len(self.index), dtype=torch.float64)
        self.edge = torch.empty(len(self.index), dtype=edge_type)
        ends = np.cumsum(self.counts).tolist()
        for index, weight, block, start, begin, end in zip(indices, self.weights, blocks, self.edge_start, [0, *ends], ends):
            edges = torch.arange(start, start + block.n_out * block.in_per_group, dtype=edge_type)
            self.edge[begin:end] = block.source.to_parameter(edges.reshape(block.n_out, block.in_per_group)).reshape(-1)[index]
            self.magnitude[begin:end] = weight.reshape(-1)[index.to(weight.device)].cpu()
            self.index[begin:end] = index
        self.unpruned = np.ones(len(self.index), dtype=bool)  # False for the entries marked pruned
        self.segments = list(self.counts)  # entries per layer in the arrays, pruned ones included
        self.buffer = torch.empty(len(self.index), dtype=torch.float64)  # the scores, reused every round
        self.largest = float(self.magnitude.max()) if len(self.magnitude) else 0.0  # NaN if any is
        self.live = np.arange(self.edge_start[-1])  # edge numbers (of all edges) of ``share``
        self._renumber()

    def _renumber(self) -> None:
        """Keep in ``share`` only the edges of unpruned entries (the arrays hold no pruned
        ones here), ``edge`` pointing at them; ``local`` and ``bounds``: each layer's
        grouped-form indices of them and its part of ``share``."""
        edge = self.edge.numpy()
        used = np.zeros(len(self.live) + 1, dtype=bool)
        used[edge] = True
        position = np.cumsum(used, dtype=edge.dtype)
        position -= 1
        self.edge = torch.from_numpy(position.take(edge))
        self.live = self.live[used[:-1]]
        self.share = self.all_shares[: len(self.live) + 1]
        self.share[-1] = -1.0  # the sentinel edge of pruned entries
        self.bounds = np.searchsorted(self.live, self.edge_start).tolist()
        self.local = [
            np.divmod(self.live[lo:hi] - start, block.in_per_group)
            for block, lo, hi, start in zip(self.blocks, self.bounds, self.bounds[1:], self.edge_start)
        ]

    def scores(self, result: Flows) -> torch.Tensor:
        """What :func:`connect_score` gives the unpruned weights (non-finite to 0, as
        there), -1 for the pruned entries; a view of a buffer the next round reuses."""
        if math.isfinite(result.log_phi):
            for block, local, start, end in zip(self.blocks, self.local, self.bounds, self.bounds[1:]):
                if end > start:
                    self.share[start:end] = torch.from_numpy(edge_share(block, result, local))
        else:
            self.share[:-1] = 0.0
        scores = torch.index_select(self.share, 0, self.edge, out=self.buffer[: len(self.edge)]).mul_(self.magnitude)
        if math.isfinite(float(self.share.max()) * self.largest):  # bounds every product: all finite
            return scores
        return finite_scores(scores)

    def keep_only(self, kept: torch.Tensor) -> None:
        """Prune the unpruned entries not flagged in ``kept``: zero their mask and ``|w|``
        entries, mark them pruned here."""
        dropped = np.greater(self.unpruned, kept.numpy())  # unpruned, not kept
        position = np.flatnonzero(dropped)
        cuts = np.searchsorted(position, np.cumsum(self.segments)).tolist()
        index = self.index.numpy()
        for i, (begin, end) in enumerate(zip([0, *cuts], cuts)):
            if end > begin:
                self.counts[i] -= end - begin
                self._zero(i, index[position[begin:end]].astype(np.intp))  # numpy scatters intp 3x faster
        self.unpruned[position] = False
        self.edge.numpy()[position] = len(self.share) - 1  # the sentinel
        self.magnitude.numpy()[position] = 1.0
        if sum(self.counts) < (1 - _COMPACT_AT) * len(self.edge):
            position = torch.from_numpy(np.flatnonzero(self.unpruned))
            self.index, self.magnitude, self.edge = (t.index_select(0, position) for t in (self.index, self.magnitude, self.edge))
            self.unpruned = np.ones(len(position), dtype=bool)
            self.segments = list(self.counts)
            self._renumber()

    def _zero(self, layer: int, removed: np.ndarray) -> None:
        """Zero the mask and ``|w|`` of layer ``layer`` at flat indices ``removed`` (intp)."""
        for tensor in (self.masks[layer], self.weights[layer]):
            if tensor.device.type == "cpu" and tensor.is_contiguous():
                tensor.view(-1).numpy()[removed] = 0  # numpy scatters several times faster than index_fill_
                continue
            indices = torch.from_numpy(removed).to(tensor.device, torch.int64)
            if tensor.is_contiguous():
                tensor.view(-1).index_fill_(0, indices, 0)
            else:  # channels_last: indices are row-major positions, which have no flat view
                tensor.index_put_(torch.unravel_index(indices, tensor.shape), tensor.new_zeros(()))


def _reading(block: Block, magnitude: torch.Tensor) -> Block:
    """``block`` reading its weights from ``magnitude`` (``|w|``, kept up to date by the
    caller) instead of rebuilding ``w_orig * w_mask``."""
    source = copy.copy(block.source)
    source.parameter = lambda: magnitude  # type: ignore[method-assign]  # where every aggregation reads it
    source.nonnegative = True  # the l1 aggregation needs no abs of it
    return dataclasses.replace(block, source=source)
