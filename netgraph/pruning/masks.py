"""Which weights can be pruned, and masks on them in ``torch.nn.utils.prune``'s format.

A *param* is a ``(module, name)`` pair; a *mask* is a bool tensor shaped like the
weight, True where the weight is kept. Masks live in the module exactly as
``torch.nn.utils.prune`` leaves them (a ``name_orig`` parameter, a ``name_mask``
buffer and a forward pre-hook that multiplies them), so checkpoints use the
ecosystem's format and :func:`make_permanent` is ``prune.remove``.

Masks only ever shrink: :func:`apply_masks` intersects a new mask with the one
already there, and :func:`select_mask` never picks a weight that is already pruned.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from netgraph.errors import NetgraphError
from netgraph.parameters import Param, effective_weight

Scope = Literal["global", "layerwise"]

__all__ = [
    "Scope",
    "apply_masks",
    "check_scope",
    "compression",
    "current_masks",
    "kth_smallest",
    "make_permanent",
    "remaining",
    "select_alive",
    "select_mask",
    "sparsity",
    "sync_weights",
    "total_weights",
]


def current_masks(params: Sequence[Param]) -> list[torch.Tensor]:
    """The kept pattern of each param: its prune mask, or all True for a weight that
    was never pruned."""
    masks = []
    for module, name in params:
        mask = getattr(module, f"{name}_mask", None)
        if mask is None:
            mask = torch.ones_like(getattr(module, name), dtype=torch.bool)
        masks.append(mask.detach() != 0)
    return masks


def apply_masks(params: Sequence[Param], masks: Sequence[torch.Tensor]) -> None:
    """Prune each param to its mask through ``prune.custom_from_mask``.

    On an already pruned weight the new mask is *intersected* with the stored one,
    in place: a weight pruned once stays pruned, and however many rounds an iterated
    method runs, each weight keeps one hook and one mask buffer (stacking
    ``custom_from_mask`` calls would grow a ``PruningContainer`` holding every round's
    mask)."""
    if len(params) != len(masks):
        raise NetgraphError(f"got {len(masks)} masks for {len(params)} parameters")
    for (module, name), mask in zip(params, masks):
        weight = getattr(module, name)
        if mask.shape != weight.shape:
            raise NetgraphError(
                f"mask of shape {tuple(mask.shape)} does not fit {type(module).__name__}.{name} "
                f"of shape {tuple(weight.shape)}"
            )
        stored = getattr(module, f"{name}_mask", None)
        if stored is None:
            prune.custom_from_mask(module, name, mask.to(weight.device, torch.bool))
        else:
            stored.mul_(mask.to(stored.device, torch.bool))
            _sync(module, name)


def sync_weights(model: nn.Module) -> None:
    """Recompute every pruned ``w = w_orig * w_mask`` now rather than at the next
    forward pass, for code that reads ``module.w`` after ``w_orig`` or ``w_mask``
    changed in place (an optimiser step, a rewind, a reparametrised forward)."""
    for module, name in _pruned(model):
        _sync(module, name)


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold every mask into its weight (``prune.remove``): the pruned weights become
    plain zeros and ``w_orig``/``w_mask`` disappear from the state dict."""
    for module, name in list(_pruned(model)):
        prune.remove(module, name)
    return model


def total_weights(params: Sequence[Param]) -> int:
    """Number of prunable weights, pruned or not."""
    return sum(getattr(m, n).numel() for m, n in params)


def remaining(params: Sequence[Param]) -> int:
    """Nonzero effective weights. A kept weight that is exactly zero counts as
    removed: this is the *nominal* count the reports use, and it also works on
    models whose masks were made permanent."""
    return sum(int(torch.count_nonzero(effective_weight(m, n).detach())) for m, n in params)


def sparsity(params: Sequence[Param]) -> float:
    """Fraction of the prunable weights that are zero."""
    return 1.0 - remaining(params) / total_weights(params)


def compression(params: Sequence[Param]) -> float:
    """Total / remaining prunable weights (``inf`` when none remain)."""
    left = remaining(params)
    return total_weights(params) / left if left else float("inf")


def check_scope(scope: str) -> None:
    """Refuse a scope other than ``global`` or ``layerwise`` (a user error)."""
    if scope not in ("global", "layerwise"):
        raise NetgraphError(f"unknown scope {scope!r}; choose global or layerwise")


def select_mask(
    scores: Sequence[torch.Tensor],
    keep: int,
    scope: Scope = "global",
    current_masks: Sequence[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """Masks keeping exactly ``keep`` weights, the highest-scoring ones.

    ``global`` ranks all weights together. ``layerwise`` keeps the same fraction of
    every layer: layer sizes split ``keep`` by largest remainder (ties to the earlier
    layer), then each layer keeps its top weights. Equal scores go to the lower flat
    index (a stable sort; in ``global``, earlier layers first), so a mask never
    depends on sort internals. A weight outside ``current_masks`` is never kept and
    its score is ignored; a NaN score of any other weight is an error.
    """
    if len(scores) == 0:
        raise NetgraphError("no scores to select from")
    if current_masks is None:
        alive = [torch.ones_like(s, dtype=torch.bool) for s in scores]
    elif [m.shape for m in current_masks] != [s.shape for s in scores]:
        raise NetgraphError("current_masks do not match the scores one to one in shape")
    else:
        alive = [m.to(s.device, torch.bool) for m, s in zip(current_masks, scores)]
    kept = select_alive([s.masked_select(a) for s, a in zip(scores, alive)], keep, scope, [s.numel() for s in scores])
    return [a.masked_scatter(a, k) for a, k in zip(alive, kept)]


def select_alive(
    alive_scores: Sequence[torch.Tensor],
    keep: int,
    scope: Scope,
    sizes: Sequence[int],
    alive: Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """The selection of :func:`select_mask` on the scores of the unpruned weights only.

    ``alive_scores[i]`` holds layer ``i``'s unpruned weights in flat-index order and
    ``sizes[i]`` its full size (which sets its layerwise share); the result flags
    which of them are kept. Work is proportional to the weights still alive, which
    is what keeps late rounds of an iterated method cheap.

    ``alive`` (each layer's count of unpruned weights) lets ``alive_scores`` also hold
    pruned weights, scored below every unpruned one (say -1 among nonnegative
    scores): they rank last, so they are never kept and the selection is the one
    without them. An iterated method can then drop them from its arrays only now
    and then. In ``global`` scope the layers may come as one tensor (no copy)."""
    check_scope(scope)
    counts = [s.numel() for s in alive_scores] if alive is None else list(alive)
    if not 0 <= keep <= sum(counts):
        raise NetgraphError(f"cannot keep {keep} weights: {sum(counts)} remain unpruned")
    # a sum is NaN whenever an element is (one cheap pass); only then look closer (inf - inf)
    if any(bool(torch.isnan(s.sum())) and bool(torch.isnan(s).any()) for s in alive_scores):
        raise NetgraphError("pruning scores contain NaN")
    if scope == "global":
        values = alive_scores[0].flatten() if len(alive_scores) == 1 else torch.cat([s.flatten() for s in alive_scores])
        return list(_top(values, keep).split([s.numel() for s in alive_scores]))
    return [_top(s, b) for s, b in zip(alive_scores, _layer_budgets(list(sizes), counts, keep))]


def _top(values: torch.Tensor, keep: int) -> torch.Tensor:
    """Flags of the ``keep`` highest ``values``, ties to the lower index.

    A k-th value threshold instead of a full sort (linear time: the selection runs
    every round of an iterated method); the threshold's ties go to the lowest
    indices, exactly as a stable descending sort would order them."""
    if keep >= values.numel():
        return torch.ones_like(values, dtype=torch.bool)
    if keep == 0:
        return torch.zeros_like(values, dtype=torch.bool)
    threshold = kth_smallest(values, values.numel() - keep + 1)
    array = _numpy(values)
    if array is None:
        kept = values >= threshold
        extra = int(torch.count_nonzero(kept)) - keep
    else:
        kept = torch.from_numpy(array >= threshold.item())
        extra = int(np.count_nonzero(kept.numpy())) - keep
    if extra > 0:  # more ties at the threshold than places: the lowest indices win
        kept[(values == threshold).nonzero().squeeze(1)[-extra:]] = False
    return kept


_SAMPLE = 1 << 16


def kth_smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    """``torch.kthvalue(values, k).values`` of a 1-D tensor, exact, and several times
    faster on large inputs: a strided sample brackets the answer from both sides, so
    only the values inside the bracket (a few percent) are searched, wherever ``k``
    lies and however many values sit far below it (an iterated method's pruned
    entries). A bracket the sample got wrong costs one extra pass, never a wrong
    answer."""
    n = values.numel()
    if n <= 8 * _SAMPLE:
        return _kthvalue(values, k)
    sample = values[:: n // _SAMPLE]
    m = sample.numel()
    slack = 4 * math.isqrt(m) + 16  # 8 standard deviations of the answer's rank in the sample
    rank = k * m // n
    low = _kthvalue(sample, rank - slack) if rank - slack >= 1 else None
    high = _kthvalue(sample, rank + slack) if rank + slack <= m else None
    below, inside = _bracket(values, low, high)
    if below < k <= below + inside.numel():  # the k-th smallest lies in [low, high]
        return _kthvalue(inside, k - below)
    return _kthvalue(values, k)


def _numpy(values: torch.Tensor) -> np.ndarray | None:
    """``values`` as a numpy view where they are on the CPU in a dtype numpy has: its
    comparisons, counts and boolean selections are several times faster than torch's
    (on one thread: 3x for a comparison, 4x for a count)."""
    if values.device.type != "cpu" or values.dtype == torch.bfloat16:
        return None
    return values.detach().numpy()


def _bracket(values: torch.Tensor, low: torch.Tensor | None, high: torch.Tensor | None) -> tuple[int, torch.Tensor]:
    """How many ``values`` are below ``low``, and those in ``[low, high]`` (None: unbounded).
    On CPU through numpy (see :func:`_numpy`)."""
    numpy_view = _numpy(values)
    cpu = numpy_view is not None
    array = numpy_view if cpu else values
    count = np.count_nonzero if cpu else torch.count_nonzero
    inside = None
    below = 0
    if low is not None:
        inside = array >= low.item()
        below = values.numel() - int(count(inside))
    if high is not None:
        under = array <= high.item()
        if inside is None:
            inside = under
        else:
            inside &= under
    if inside is None:
        return below, values
    return below, torch.from_numpy(np.compress(inside, array)) if cpu else array[inside]  # compress: 2x a[mask]


def _kthvalue(values: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th smallest value. On CPU through numpy's introselect: torch's CPU
    ``kthvalue`` is quadratic on reversed input (measured 14 s for 700k values)."""
    if values.device.type != "cpu":
        return torch.kthvalue(values, k).values
    if values.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds it exactly
        values = values.float()
    array = values.detach().numpy()
    return torch.as_tensor(np.partition(array, k - 1)[k - 1])


def _layer_budgets(sizes: list[int], alive: list[int], keep: int) -> list[int]:
    """Split ``keep`` over layers in proportion to their sizes, largest remainder
    first. A layer whose share reaches what it has left keeps all of it and the
    others share the rest, so the split always fits (iterated layerwise pruning can
    otherwise ask a layer for a weight it lost in an earlier round)."""
    budgets = [0] * len(sizes)
    open_layers = list(range(len(sizes)))
    left = keep
    while open_layers:
        size = sum(sizes[i] for i in open_layers)
        full = [i for i in open_layers if alive[i] * size <= left * sizes[i]]
        if not full:
            break
        for i in full:
            budgets[i] = alive[i]
            left -= alive[i]
        open_layers = [i for i in open_layers if i not in full]
    if open_layers:
        for i in open_layers:
            budgets[i] = left * sizes[i] // size
        by_remainder = sorted(open_layers, key=lambda i: (-(left * sizes[i] % size), i))
        for i in by_remainder[: left - sum(budgets[i] for i in open_layers)]:
            budgets[i] += 1
    return budgets


def _pruned(model: nn.Module) -> Iterator[Param]:
    """``(module, name)`` of every tensor a ``torch.nn.utils.prune`` hook masks."""
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, prune.BasePruningMethod):
                yield module, hook._tensor_name


def _sync(module: nn.Module, name: str) -> None:
    # What the prune hook does before each forward.
    setattr(module, name, effective_weight(module, name))
