"""Pruning methods: a score, then a mask, one-shot or iterated, on one interface.

``METHODS[name].prune(model, params, sparsity=0.9, ...)`` scores the (masked) model,
keeps the best weights and applies the masks; with ``iterations > 1`` it re-scores
after every round on a schedule that ends exactly at the target. The registry of named
methods is :mod:`netgraph.pruning.registry`; a method may bring its own loop
(:data:`IterateFn`) when it can reach the same masks faster than by re-scoring
every weight each round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from netgraph.errors import NetgraphError
from netgraph.pruning import scores
from netgraph.pruning.masks import (
    Param,
    Scope,
    apply_masks,
    check_scope,
    current_masks,
    select_mask,
    sync_weights,
    total_weights,
)
from netgraph.pruning.schedule import Schedule, keep_schedule, target_keep
from netgraph.pruning.scores import Batch, ScoreContext, ScoreFn

IterateFn = Callable[[nn.Module, Sequence[Param], Sequence[int], ScoreContext, Scope], list[torch.Tensor]]
"""``(model, params, keeps, ctx, scope) -> masks``: prune ``params`` to ``keeps[k]``
weights after round ``k``, with the masks :func:`iterate_scores` would give."""


@dataclass(frozen=True)
class PruningMethod:
    """A registered score and how it is used by default."""

    name: str
    score: ScoreFn
    data_free: bool
    default_iterations: int = 1
    default_scope: Scope = "global"
    iterate: IterateFn | None = None

    def prune(
        self,
        model: nn.Module,
        params: Sequence[Param],
        *,
        compression: float | None = None,
        sparsity: float | None = None,
        data: Iterable[Batch] | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
        input_shape: Sequence[int] | None = None,
        iterations: int | None = None,
        schedule: Schedule = "exponential",
        scope: Scope | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> list[torch.Tensor]:
        """Prune ``params`` in place to exactly the target (see
        :func:`~netgraph.pruning.schedule.target_keep`) and return the final masks.

        ``iterations`` defaults to the method's own (100 for SynFlow); each round
        re-scores the masked model. ``input_shape`` is one example's shape without
        the batch dimension (data-free scores such as SynFlow need it). ``progress``
        shows a bar over the rounds.
        """
        if data is None and not self.data_free:
            raise NetgraphError(f"{self.name} needs data batches")
        scope = scope or self.default_scope
        check_scope(scope)
        rounds = self.default_iterations if iterations is None else iterations
        keeps = _keeps(params, compression, sparsity, rounds, schedule)
        if progress and len(keeps) > 1:
            keeps = _Rounds(keeps, f"{self.name} rounds")
        ctx = ScoreContext(
            device=_device(params),
            data=data,
            loss_fn=loss_fn,
            input_shape=None if input_shape is None else tuple(input_shape),
            seed=seed,
        )
        if self.iterate is not None:
            return self.iterate(model, params, keeps, ctx, scope)
        return iterate_scores(self.score, model, params, keeps, ctx, scope)


def iterate_scores(
    score: ScoreFn, model: nn.Module, params: Sequence[Param], keeps: Sequence[int], ctx: ScoreContext, scope: Scope
) -> list[torch.Tensor]:
    """The plain loop: score the masked model, keep ``keeps[k]`` weights, repeat."""
    masks: list[torch.Tensor] = []
    for keep in keeps:
        masks = _prune_to(params, score(model, params, ctx), keep, scope)
    return masks


def iterative_magnitude(
    model: nn.Module,
    params: Sequence[Param],
    train_fn: Callable[[nn.Module], object],
    *,
    rounds: int,
    compression: float | None = None,
    sparsity: float | None = None,
    rewind_state: Mapping[str, torch.Tensor] | None = None,
    scope: Scope = "global",
) -> list[torch.Tensor]:
    """Iterative magnitude pruning (Han et al. 2015); with ``rewind_state``, lottery
    ticket rewinding (Frankle et al. 2019/2020). Return the final masks.

    Each round trains with ``train_fn(model)``, then prunes the smallest weights
    down to the round's count on the exponential schedule, then, if
    ``rewind_state`` is given (a ``state_dict``, saved before or after pruning
    began), resets every weight and buffer to it while keeping the masks. The
    subnetwork comes back untrained after the last prune: training it is the
    caller's next step.
    """
    keeps = _keeps(params, compression, sparsity, rounds, "exponential")
    ctx = ScoreContext(device=_device(params))
    masks: list[torch.Tensor] = []
    for keep in keeps:
        train_fn(model)
        masks = _prune_to(params, scores.magnitude(model, params, ctx), keep, scope)
        if rewind_state is not None:
            _rewind(model, rewind_state)
    return masks


def _keeps(
    params: Sequence[Param],
    compression: float | None,
    sparsity: float | None,
    rounds: int,
    schedule: Schedule,
) -> list[int]:
    """Weights to keep after each round, checked before anything is pruned."""
    alive = sum(int(torch.count_nonzero(mask)) for mask in current_masks(params))
    final = target_keep(total_weights(params), compression=compression, sparsity=sparsity)
    if final > alive:
        raise NetgraphError(
            f"the target keeps {final} weights but only {alive} are left: pruning never revives weights"
        )
    return keep_schedule(alive, final, rounds, schedule)


def _prune_to(
    params: Sequence[Param], scored: list[torch.Tensor], keep: int, scope: Scope
) -> list[torch.Tensor]:
    masks = select_mask(scored, keep, scope, current_masks(params))
    apply_masks(params, masks)
    return masks


def _device(params: Sequence[Param]) -> torch.device:
    module, name = params[0]
    return getattr(module, name).device


def _rewind(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load ``state`` but keep the masks. A pruned weight is stored as ``w_orig``,
    which a state saved before pruning calls ``w`` (and vice versa)."""
    loaded = dict(model.state_dict())
    for key, value in state.items():
        if key.endswith("_mask"):
            continue  # rewinding restores values, never masks
        base = key.removesuffix("_orig")
        target = f"{base}_orig" if f"{base}_orig" in loaded else base
        if target not in loaded:
            raise NetgraphError(f"rewind state has {key!r}, which the model does not")
        loaded[target] = value
    model.load_state_dict(loaded)
    sync_weights(model)


class _Rounds(list):
    """The keep schedule, advancing a tqdm bar as the loops iterate over it."""

    def __init__(self, keeps: Sequence[int], desc: str) -> None:
        super().__init__(keeps)
        self.desc = desc

    def __iter__(self):  # type: ignore[no-untyped-def]
        from tqdm import tqdm

        yield from tqdm(list.__iter__(self), total=len(self), desc=self.desc, leave=False)
