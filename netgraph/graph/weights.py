"""Where edge weights come from: live parameters, read through masks and parametrizations.

Every block of the channel graph stores its edge weights in *grouped form*: a
tensor ``M`` of shape ``(n_out, in_per_group)`` where output channel ``o`` of
group ``g = o // out_per_group`` is fed by input channels
``g * in_per_group + j``. Dense layers have one group, depthwise convs and
diagonal (norm) blocks have one group per channel. The sources below keep a
reference to their module, never a copy, so a graph is re-read for free after
pruning or an optimiser step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from netgraph.parameters import effective_weight, memoised

Aggregation = Literal["l1", "l2", "count", "nonfinite"]


def aggregate_slices(weight: torch.Tensor, how: Aggregation, nonnegative: bool = False) -> torch.Tensor:
    """Reduce a ``(rows, cols, *kernel)`` tensor over its kernel dims.

    ``l1`` sums magnitudes (the unstructured edge weight), ``l2`` takes the
    slice norm (the structured one), ``count`` counts nonzero elements and
    ``nonfinite`` counts NaN/Inf elements. ``nonnegative`` says ``weight`` holds
    magnitudes already, so ``l1`` sums it without a pass for ``abs``.
    """
    return memoised(("aggregate", id(weight), how), weight, lambda: _aggregate_slices(weight, how, nonnegative))


def _aggregate_slices(weight: torch.Tensor, how: Aggregation, nonnegative: bool) -> torch.Tensor:
    if weight.dim() > 2 and weight[0, 0].numel() == 1:
        weight = weight.reshape(weight.shape[0], weight.shape[1])
    if how == "l1":
        return _sum_slices(weight if nonnegative else weight.abs())
    if how == "l2":
        return _sum_slices(weight.square()).sqrt()
    flags = (weight != 0) if how == "count" else ~torch.isfinite(weight)
    flags = flags.to(torch.int64)
    dims = tuple(range(2, weight.dim()))
    return flags.sum(dims) if dims else flags


def _sum_slices(values: torch.Tensor) -> torch.Tensor:
    """Floating ``(rows, cols, *kernel)`` summed over the kernel: a matrix-vector
    product, about 3x faster than ``sum`` over trailing dims on CPU (outside
    autocast, which would run it in reduced precision where ``sum`` would not)."""
    if values.dim() == 2:
        return values
    kernel = values[0, 0].numel()
    with torch.autocast(values.device.type, enabled=False):
        return values.reshape(*values.shape[:2], kernel) @ values.new_ones(kernel)


class WeightSource:
    """Produces a block's grouped-form edge weights; subclasses know the layout."""

    #: (module, parameter name) of the tensor behind the block, if any.
    module: nn.Module | None
    param_name: str | None
    #: :meth:`parameter` gives magnitudes (a pruning loop's ``|w|``), which the ``l1``
    #: aggregation sums as they are.
    nonnegative: bool = False

    def grouped(self, how: Aggregation = "l1") -> torch.Tensor:
        raise NotImplementedError

    def parameter(self) -> torch.Tensor:
        """The effective (masked) parameter tensor."""
        assert self.module is not None and self.param_name is not None
        return effective_weight(self.module, self.param_name)

    def to_parameter(self, per_edge: torch.Tensor) -> torch.Tensor:
        """Broadcast a grouped-form per-edge tensor to the parameter's layout
        (restricted to the rows/columns this block covers, see ``region``)."""
        raise NotImplementedError

    def region(self) -> tuple[slice, ...]:
        """The index of the parameter covered by this block (all of it by default)."""
        return (slice(None),)

    def bias(self) -> torch.Tensor | None:
        """Per-output-channel additive constant (bias or BN shift), if any."""
        return None


@dataclass(eq=False)
class Ones(WeightSource):
    """Structural maps (joins, attention routing, black-box leaves): weights of exactly 1."""

    n_out: int
    in_per_group: int
    module: nn.Module | None = None
    param_name: str | None = None

    def grouped(self, how: Aggregation = "l1") -> torch.Tensor:
        if how == "nonfinite":
            return torch.zeros(self.n_out, self.in_per_group, dtype=torch.int64)
        dtype = torch.int64 if how == "count" else torch.float64
        return torch.ones(self.n_out, self.in_per_group, dtype=dtype)


@dataclass(eq=False)
class DenseWeight(WeightSource):
    """Linear-like ``(out, in)`` and conv ``(out, in/groups, *k)`` weights.

    ``rows`` restricts to a row slice (the q/k/v parts of an attention
    ``in_proj_weight``); ``transposed`` handles ConvTranspose's
    ``(in, out/groups, *k)`` layout.
    """

    module: nn.Module
    param_name: str = "weight"
    groups: int = 1
    transposed: bool = False
    rows: slice | None = None
    bias_name: str | None = "bias"

    def _weight(self) -> torch.Tensor:
        weight = self.parameter()
        return weight[self.rows] if self.rows is not None else weight

    def grouped(self, how: Aggregation = "l1") -> torch.Tensor:
        matrix = aggregate_slices(self._weight(), how, self.nonnegative)
        if not self.transposed:
            return matrix
        n_in, out_per_group = matrix.shape
        in_per_group = n_in // self.groups
        return (
            matrix.reshape(self.groups, in_per_group, out_per_group)
            .transpose(1, 2)
            .reshape(self.groups * out_per_group, in_per_group)
        )

    def to_parameter(self, per_edge: torch.Tensor) -> torch.Tensor:
        shape = self._weight().shape
        if self.transposed:
            n_out, in_per_group = per_edge.shape
            out_per_group = n_out // self.groups
            per_edge = (
                per_edge.reshape(self.groups, out_per_group, in_per_group)
                .transpose(1, 2)
                .reshape(self.groups * in_per_group, out_per_group)
            )
        view = per_edge.reshape(*per_edge.shape, *([1] * (len(shape) - 2)))
        return view.expand(shape)

    def region(self) -> tuple[slice, ...]:
        return (self.rows,) if self.rows is not None else (slice(None),)

    def bias(self) -> torch.Tensor | None:
        if self.bias_name is None:
            return None
        bias = getattr(self.module, self.bias_name, None)
        if bias is None:
            return None
        return bias[self.rows] if self.rows is not None else bias


@dataclass(eq=False)
class EmbeddingWeight(WeightSource):
    """An Embedding's ``(vocab, dim)`` table seen from one vocabulary-aggregated source node."""

    module: nn.Module
    param_name: str = "weight"

    def grouped(self, how: Aggregation = "l1") -> torch.Tensor:
        return aggregate_slices(self.parameter().t().unsqueeze(1), how, self.nonnegative)

    def to_parameter(self, per_edge: torch.Tensor) -> torch.Tensor:
        return per_edge[:, 0].unsqueeze(0).expand(self.parameter().shape)


@dataclass(eq=False)
class DiagonalWeight(WeightSource):
    """Per-channel scales of norm layers: ``|gamma| / sqrt(var + eps)`` for a
    BatchNorm with running statistics (its eval-mode gain), ``|gamma|`` otherwise."""

    module: nn.Module
    channels: int
    param_name: str | None = "weight"

    def gain(self) -> torch.Tensor:
        gamma = getattr(self.module, self.param_name, None) if self.param_name else None
        scale = (
            effective_weight(self.module, self.param_name).abs()
            if gamma is not None
            else torch.ones(self.channels, dtype=torch.float32)
        )
        var = getattr(self.module, "running_var", None)
        if var is not None:
            scale = scale / torch.sqrt(var.to(scale.device) + self.module.eps)
        return scale

    def grouped(self, how: Aggregation = "l1") -> torch.Tensor:
        # once inside reuse_weights: the forward and backward sweeps read every norm layer
        return memoised(("diagonal", id(self), how), self, lambda: self._grouped(how))

    def _grouped(self, how: Aggregation) -> torch.Tensor:
        gain = self.gain().reshape(-1, 1)
        if how == "count":
            return (gain != 0).to(torch.int64)
        if how == "nonfinite":
            return (~torch.isfinite(gain)).to(torch.int64)
        return gain

    def gate(self) -> torch.Tensor:
        """``|gamma|`` alone, the node gate of structured CoNNect."""
        if not self.param_name or getattr(self.module, self.param_name, None) is None:
            return torch.ones(self.channels)
        return effective_weight(self.module, self.param_name).abs()

    def to_parameter(self, per_edge: torch.Tensor) -> torch.Tensor:
        return per_edge.reshape(-1)

    def bias(self) -> torch.Tensor | None:
        """The eval-mode shift: ``beta - gamma * mean / sqrt(var + eps)`` with running
        statistics (a zero ``beta`` still shifts by the mean), else ``beta``."""
        beta = getattr(self.module, "bias", None)
        mean = getattr(self.module, "running_mean", None)
        if mean is None:
            return beta
        gamma = effective_weight(self.module, "weight") if getattr(self.module, "weight", None) is not None else 1.0
        shift = -gamma * mean / torch.sqrt(self.module.running_var + self.module.eps)
        return shift if beta is None else beta + shift
