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
which equals the scipy ``phi`` of :mod:`netgraph.connectivity.propagate`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from netgraph.errors import NetgraphError
from netgraph.graph.channels import Block, ChannelGraph
from netgraph.graph.tracer import trace
from netgraph.graph.weights import DiagonalWeight


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
    """The CoNNect regularizer of a model: ``loss = task + lambda_r * reg()``.

    ``reg()`` returns ``R = -log phi(A~)`` on the model's live weights: finite for any
    connected net, ``+inf`` (with a :class:`DisconnectedWarning`) when disconnected,
    and differentiable in every weight.

    Parameters
    ----------
    model : nn.Module or ChannelGraph
        The model (traced here), or its graph from :func:`netgraph.trace`.
    example_input : Tensor or tuple, optional
        An input with a batch dimension, for tracing.
    input_shape : sequence of int, optional
        One sample's shape, instead of ``example_input``.
    structured : bool
        Edge weights are slice L2 norms (channel-level, group-lasso-like) instead
        of slice L1 sums.
    gates : bool
        Structured only: norm-layer ``|gamma|`` scales, normalised to mean 1,
        multiply into their channels.
    normalize : bool
        ``A~_b = |A_b| m_b / ||A_b||_1`` (DESIGN.md section 3), which makes ``R``
        invariant to rescaling a layer; ``False`` gives the raw path sum (norm
        layers then enter with their eval-mode gain).

    Examples
    --------
    >>> import torch, netgraph as ng
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> reg = ng.CoNNect(model, input_shape=(4,))
    >>> r = reg()
    >>> r.backward()
    >>> bool(torch.isfinite(r)), model[0].weight.grad.shape
    (True, torch.Size([8, 4]))
    >>> with torch.no_grad():
    ...     _ = model[0].weight.mul_(10.0)  # rescaling a layer leaves R unchanged
    >>> bool(torch.isclose(reg(), r))
    True
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
        self.structured = structured
        self.gates = gates and structured
        self.normalize = normalize
        self._example_input = example_input
        self._input_shape = tuple(input_shape) if input_shape is not None else None
        self._build(model if isinstance(model, ChannelGraph) else trace(model, example_input, input_shape))

    def _build(self, graph: ChannelGraph) -> None:
        """Precompute the gathers of ``graph``; remember the parameter shapes it was built for."""
        self.graph = graph
        self._shapes = _shapes(graph.model)
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

    def refresh(self) -> None:
        """Re-trace the model if a parameter changed shape or device (structural pruning,
        ``.to()``), so the graph never reads stale channel indices. Called by every
        evaluation; cheap when nothing changed."""
        model = self.graph.model
        if _shapes(model) == self._shapes:
            return
        if self._example_input is None and self._input_shape is None:
            raise NetgraphError(
                "the model's parameter shapes changed and CoNNect was built from a ChannelGraph: "
                "build it from the model with example_input or input_shape so it can re-trace"
            )
        example = self._example_input
        if isinstance(example, torch.Tensor):
            example = example.to(next(model.parameters()).device)
        self._build(trace(model, example, self._input_shape))

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
        self.refresh()
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


def _shapes(model: nn.Module) -> tuple:
    """Names, shapes and devices of the parameters: what the precomputed gathers depend on
    (a pruning mask, ``weight`` -> ``weight_orig``, changes none of them)."""
    return tuple((name.removesuffix("_orig"), tuple(p.shape), p.device) for name, p in model.named_parameters())
