"""CoNNect: a differentiable measure of input-output connectivity (DESIGN.md section 3).

    R(theta) = -log phi(A~),   A~_b = |A_b| * m_b / ||A_b||_1,   m_b = min(n_in, n_out)

evaluated on the channel graph with torch ops on the live parameters, so it
stays correct after masks change and gradients reach every weight. Flows are
propagated group by group, each normalised by its (detached) peak with the
log of the peak carried alongside: ``R`` is finite for any connected network
however deep, and ``+inf`` (with no gradient, and a warning) exactly when it
is disconnected.

Granularities: *unstructured* edge weights sum ``|theta|`` over a kernel slice;
*structured* ones take the slice's L2 norm and can use norm-layer scales as
node gates (normalised to mean 1). ``normalize=False`` gives the raw path sum,
which equals the scipy ``phi`` of :mod:`netgraph.connectivity`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from netgraph.connectivity import Flows, log_per_channel
from netgraph.graph import Block, ChannelGraph
from netgraph.trace import trace
from netgraph.weights import DiagonalWeight


class DisconnectedWarning(RuntimeWarning):
    """CoNNect was evaluated on a network with no input->output path."""


class _Gather:
    """How one block reads its input channels from node groups (precomputed indices)."""

    def __init__(self, block: Block, node_group: np.ndarray, offsets: np.ndarray, device: torch.device) -> None:
        groups = node_group[block.in_node]
        self.parts: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        for group in np.unique(groups):
            where = groups == group
            local = torch.as_tensor(block.in_node[where] - offsets[group], device=device)
            chan = torch.as_tensor(block.in_chan[where], device=device)
            self.parts.append((int(group), local, chan))
        self.n_in = block.n_in
        self.direct = block.one_per_channel and len(self.parts) == 1

    def __call__(self, values: list[torch.Tensor | None], scales: list[float], dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, float]:
        live = [(g, l, c) for g, l, c in self.parts if values[g] is not None and math.isfinite(scales[g])]
        if not live:
            return torch.zeros(self.n_in, dtype=dtype, device=device), -math.inf
        top = max(scales[g] for g, _, _ in live)
        if self.direct:
            group, local, _ = live[0]
            return values[group][local], top
        x = torch.zeros(self.n_in, dtype=dtype, device=device)
        for group, local, chan in live:
            x = x.index_add(0, chan, values[group][local] * math.exp(scales[group] - top))
        return x, top


def grouped_matvec(weights: torch.Tensor, x: torch.Tensor, groups: int) -> torch.Tensor:
    """``y[o] = sum_j W[o, j] x[g(o) * in_per_group + j]`` for grouped-form ``W``."""
    n_out, in_per_group = weights.shape
    if groups == 1:
        return weights @ x
    if in_per_group == 1 and n_out == groups:
        return weights[:, 0] * x
    out_per_group = n_out // groups
    return torch.bmm(weights.view(groups, out_per_group, in_per_group), x.view(groups, in_per_group, 1)).view(-1)


class CoNNect(nn.Module):
    """The CoNNect regularizer of a model: ``reg = CoNNect(model, example_input); loss = task + lam * reg()``.

    ``structured`` switches edge weights from slice L1 to slice L2 norms;
    ``gates`` (structured only) multiplies norm-layer ``|gamma|`` scales,
    normalised to mean 1, into the channels; ``normalize=False`` is the raw
    path sum (norm layers then enter with their eval-mode gain).
    """

    def __init__(
        self,
        model: nn.Module | ChannelGraph,
        example_input: Any = None,
        input_shape: Sequence[int] | None = None,
        structured: bool = False,
        gates: bool = False,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        graph = model if isinstance(model, ChannelGraph) else trace(model, example_input, input_shape)
        self.graph = graph
        self.structured = structured
        self.gates = gates and structured
        self.normalize = normalize
        offsets = np.array([g.offset for g in graph.groups])
        node_group = graph.node_group
        self._group_of = {id(g): i for i, g in enumerate(graph.groups)}
        param = next(graph.model.parameters())
        self._device = param.device
        self._gathers = [_Gather(b, node_group, offsets, param.device) for b in graph.blocks]
        self._inputs = sorted({int(g) for g in node_group[graph.input_nodes]})
        outputs = node_group[graph.output_nodes]
        self._outputs = [
            (int(g), torch.as_tensor(graph.output_nodes[outputs == g] - offsets[g], device=param.device))
            for g in np.unique(outputs)
        ]

    def block_weights(self, block: Block, dtype: torch.dtype) -> torch.Tensor:
        """Grouped-form edge weights ``A~_b`` of one block, differentiable in the parameters."""
        source = block.source
        if block.kind == "param":
            weights = source.grouped("l2" if self.structured else "l1").to(dtype)
            if self.normalize:
                total = weights.sum()
                weights = weights * (min(len(block.src), block.n_out) / total.clamp_min(torch.finfo(dtype).tiny))
            return weights
        if block.kind == "diag" and isinstance(source, DiagonalWeight):
            if not self.normalize:
                return source.grouped("l1").to(self._device, dtype)
            if not self.gates:
                return torch.ones(block.n_out, 1, dtype=dtype, device=self._device)
            gate = source.gate().to(dtype).reshape(-1, 1)
            return gate / gate.mean().clamp_min(torch.finfo(dtype).tiny)
        return source.grouped("l1").to(self._device, dtype)

    def propagate(self, dtype: torch.dtype | None = None) -> tuple[list[torch.Tensor | None], list[float]]:
        """Forward flows per node group, as (values with peak 1, log-scales)."""
        dtype = dtype or next(self.graph.model.parameters()).dtype
        groups = self.graph.groups
        values: list[torch.Tensor | None] = [None] * len(groups)
        scales = [-math.inf] * len(groups)
        for g in self._inputs:
            values[g] = torch.ones(groups[g].size, dtype=dtype, device=self._device)
            scales[g] = 0.0
        for block, gather in zip(self.graph.blocks, self._gathers):
            x, top = gather(values, scales, dtype, self._device)
            if not math.isfinite(top):
                continue
            y = grouped_matvec(self.block_weights(block, dtype), x, block.groups)
            peak = float(y.detach().max())
            if peak > 0 and math.isfinite(peak):
                group = self._group_of[id(block.dst)]
                values[group] = y / peak
                scales[group] = top + math.log(peak)
        return values, scales

    def log_phi(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``log phi(A~)``; ``-inf`` (no gradient) when the network is disconnected."""
        values, scales = self.propagate(dtype)
        terms = [
            torch.log(values[g][local].sum()) + scales[g]
            for g, local in self._outputs
            if values[g] is not None and math.isfinite(scales[g])
        ]
        terms = [t for t in terms if torch.isfinite(t.detach())]
        if not terms:
            return torch.tensor(-math.inf, device=self._device)
        return torch.logsumexp(torch.stack(terms), 0)

    def forward(self) -> torch.Tensor:
        """``R = -log phi(A~)``: finite when connected; ``+inf`` with a warning when not."""
        log_phi = self.log_phi()
        if not torch.isfinite(log_phi):
            warnings.warn("CoNNect: the network is disconnected (phi = 0); R = +inf", DisconnectedWarning, stacklevel=2)
            return torch.tensor(math.inf, device=self._device)
        return -log_phi


def connect_scores(graph: ChannelGraph, flows: Flows) -> dict[str, torch.Tensor]:
    """Data-free CoNNect score of every prunable weight: its share of path mass
    ``F_u |theta| B_v / phi`` (a kernel slice's elements split their edge's mass
    by magnitude). Per-layer rescaling cancels in the share, so raw flows give
    the normalised score. Keyed like :meth:`ChannelGraph.layers`."""
    scores: dict[str, torch.Tensor] = {}
    if not math.isfinite(flows.log_phi):
        return {key: torch.zeros(blocks[0].source.parameter().shape) for key, blocks in graph.layers().items()}
    for key, blocks in graph.layers().items():
        source = blocks[0].source
        if len(blocks) == 1 and source.region() == (slice(None),):
            # One block reads the whole tensor: |theta| * share in place on one float64 copy
            # (no zero-filled sum; a float32 * float64 broadcast product is far slower).
            per_edge = source.to_parameter(torch.from_numpy(edge_share(blocks[0], flows)))
            magnitude = source.parameter().detach().to("cpu", torch.float64, copy=True).abs_()
            scores[key] = finite_scores(magnitude.mul_(per_edge))
            continue
        weight = source.parameter().detach().abs().to("cpu", torch.float64)
        score = torch.zeros_like(weight)
        for block in blocks:
            region = block.source.region()
            score[region] += weight[region] * block.source.to_parameter(torch.from_numpy(edge_share(block, flows)))
        scores[key] = finite_scores(score)
    return scores


def finite_scores(score: torch.Tensor) -> torch.Tensor:
    """``score`` (nonnegative path-mass shares) with NaN and +Inf set to 0, in place.
    A finite sum means there are none, which one reduction tells."""
    return score if bool(torch.isfinite(score.sum())) else score.nan_to_num_(nan=0.0, posinf=0.0)


def edge_share(block: Block, flows: Flows) -> np.ndarray:
    """``F_u B_v / phi`` of every grouped-form edge of ``block`` (``n_out x in_per_group``),
    broadcast per group rather than gathered through :meth:`Block.channel_index`."""
    log_f = log_per_channel(block, flows.log_forward).reshape(block.groups, 1, block.in_per_group)
    log_b = flows.log_backward[block.dst.nodes].reshape(block.groups, -1, 1)
    return np.exp(log_f + log_b - flows.log_phi).reshape(block.n_out, block.in_per_group)
