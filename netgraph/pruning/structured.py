"""Structural (channel) pruning through Torch-Pruning's DepGraph (Fang et al. 2023).

DepGraph finds the groups of coupled channels (a conv's outputs, the BN after it,
the next layer's inputs, every branch of a residual sum) and removes whole groups,
so the model really gets smaller. Importance is any ``tp.importance.Importance``
(or callable ``group -> per-channel tensor``); ``"taylor"`` is LLM-Pruner's first
order ``|w * dL/dw|`` summed over the group and reads the gradients of one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune

from netgraph.errors import NetgraphError
from netgraph.modes import eval_mode
from netgraph.parameters import prunable_parameters

ImportanceFn = Callable[[tp.Group], torch.Tensor]

_IMPORTANCES: dict[str, Callable[[], ImportanceFn]] = {
    "magnitude": tp.importance.GroupMagnitudeImportance,  # group L2 norm
    "taylor": tp.importance.GroupTaylorImportance,
}


def structural_prune(
    model: nn.Module,
    example_input: torch.Tensor,
    ratio: float,
    importance: str | ImportanceFn = "magnitude",
    *,
    ignored_layers: Sequence[nn.Module] | None = None,
    batch: tuple[torch.Tensor, torch.Tensor] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    global_pruning: bool = False,
    round_to: int | None = None,
) -> nn.Module:
    """Remove ``ratio`` of the channels of every prunable group, in place.

    ``example_input`` is a batch for tracing. ``ignored_layers`` defaults to the last
    Linear or conv layer (module order), so the output keeps its width. With
    ``batch = (inputs, targets)`` the gradients of ``loss_fn`` on it are computed
    first for importances that read ``.grad`` ("taylor" requires it) and cleared
    afterwards. Each module keeps its own training flag.
    """
    if not 0 <= ratio < 1:
        raise NetgraphError(f"channel pruning ratio must be in [0, 1), got {ratio}")
    if prune.is_pruned(model):
        raise NetgraphError("the model carries unstructured pruning masks; make them permanent first")
    scorer = _importance(importance)
    if isinstance(scorer, tp.importance.GroupTaylorImportance) and batch is None:
        raise NetgraphError("taylor importance needs a batch to compute gradients on")
    device = next(model.parameters()).device
    if ignored_layers is None:
        ignored_layers = [prunable_parameters(model)[-1][0]]
    with eval_mode(model):  # DepGraph's tracing sets eval mode and leaves it
        pruner = tp.pruner.BasePruner(  # ``MetaPruner`` is its deprecated alias
            model,
            example_input.to(device),
            importance=scorer,
            pruning_ratio=ratio,
            ignored_layers=list(ignored_layers),
            global_pruning=global_pruning,
            round_to=round_to,
        )
        if batch is not None:
            inputs, targets = batch
            model.zero_grad(set_to_none=True)
            loss_fn(model(inputs.to(device)), targets.to(device)).backward()
        pruner.step()
    if batch is not None:
        model.zero_grad(set_to_none=True)
    return model


def _importance(importance: str | ImportanceFn) -> ImportanceFn:
    if callable(importance):
        return importance
    if importance not in _IMPORTANCES:
        raise NetgraphError(
            f"unknown importance {importance!r}; choose {' or '.join(_IMPORTANCES)} "
            "or pass a torch_pruning Importance"
        )
    return _IMPORTANCES[importance]()
