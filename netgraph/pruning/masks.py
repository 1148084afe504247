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

from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn.utils import prune

from netgraph.errors import NetgraphError
from netgraph.weights import effective_weight

Param = tuple[nn.Module, str]
Scope = Literal["global", "layerwise"]

# ``_ConvNd`` covers Conv1d/2d/3d and ConvTranspose1d/2d/3d (and their lazy forms).
_PRUNABLE = (nn.Linear, nn.modules.conv._ConvNd)

__all__ = [
    "Param",
    "Scope",
    "apply_masks",
    "compression",
    "current_masks",
    "effective_weight",
    "make_permanent",
    "prunable_parameters",
    "remaining",
    "select_mask",
    "sparsity",
    "sync_weights",
    "total_weights",
]


def prunable_parameters(
    model: nn.Module, include_first: bool = True, include_last: bool = True
) -> list[Param]:
    """Every Linear and conv weight in module order (``model.modules()``, which is
    the definition order, normally the execution order). First and last are taken in
    that order; excluding them is the usual way to protect the input and output layers."""
    params = [(module, "weight") for module in model.modules() if isinstance(module, _PRUNABLE)]
    params = params[(0 if include_first else 1) : len(params) - (0 if include_last else 1)]
    if not params:
        raise NetgraphError("the model has no Linear or conv weights left to prune")
    return params


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
    depends on sort internals. A weight outside ``current_masks`` is never kept.
    """
    if scope not in ("global", "layerwise"):
        raise NetgraphError(f"unknown scope {scope!r}; choose global or layerwise")
    if len(scores) == 0:
        raise NetgraphError("no scores to select from")
    if current_masks is None:
        alive = [torch.ones_like(s, dtype=torch.bool) for s in scores]
    elif [m.shape for m in current_masks] != [s.shape for s in scores]:
        raise NetgraphError("current_masks do not match the scores one to one in shape")
    else:
        alive = [m.to(s.device, torch.bool) for m, s in zip(current_masks, scores)]
    counts = [int(a.sum()) for a in alive]
    if not 0 <= keep <= sum(counts):
        raise NetgraphError(f"cannot keep {keep} weights: {sum(counts)} remain unpruned")
    if any(torch.isnan(s).any() for s in scores):
        raise NetgraphError("pruning scores contain NaN")
    if scope == "global":
        kept = _top(torch.cat([s.flatten() for s in scores]), torch.cat([a.flatten() for a in alive]), keep)
        return [k.view_as(s) for k, s in zip(kept.split([s.numel() for s in scores]), scores)]
    budgets = _layer_budgets([s.numel() for s in scores], counts, keep)
    return [_top(s.flatten(), a.flatten(), b).view_as(s) for s, a, b in zip(scores, alive, budgets)]


def _top(scores: torch.Tensor, alive: torch.Tensor, keep: int) -> torch.Tensor:
    """Flat mask of the ``keep`` highest alive scores, ties to the lower index.

    A k-th value threshold instead of a full sort (linear time: the selection runs
    every round of an iterated method); the threshold's ties go to the lowest
    indices, exactly as a stable descending sort would order them."""
    mask = torch.zeros_like(alive)
    candidates = alive.nonzero().squeeze(1)
    values = scores[candidates]
    if keep >= values.numel():
        mask[candidates] = True
        return mask
    if keep == 0:
        return mask
    threshold = torch.kthvalue(values, values.numel() - keep + 1).values
    above = values > threshold
    ties = (values == threshold).nonzero().squeeze(1)
    mask[candidates[above]] = True
    mask[candidates[ties[: keep - int(above.sum())]]] = True
    return mask


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
