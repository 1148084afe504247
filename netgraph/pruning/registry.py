"""The named pruning methods: ``prune(model, "synflow", compression=100, input_shape=...)``.

Listed here explicitly, in one place, rather than registered as a side effect of
importing the module that defines a score. A user's own score joins with
:func:`register_method`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from netgraph.errors import NetgraphError
from netgraph.parameters import Param, prunable_parameters
from netgraph.pruning import scores
from netgraph.pruning.masks import Scope
from netgraph.pruning.methods import IterateFn, PruningMethod
from netgraph.pruning.path_mass import connect_score, iterate_connect
from netgraph.pruning.scores import Batch, ScoreFn


class _Registry(dict[str, PruningMethod]):
    """``METHODS[name]``; an unknown name is a user error that lists the valid ones."""

    def __missing__(self, name: str) -> PruningMethod:
        raise NetgraphError(f"unknown pruning method {name!r}; choose from {', '.join(sorted(self))}")


METHODS: dict[str, PruningMethod] = _Registry(
    (method.name, method)
    for method in (
        PruningMethod("random", scores.random, data_free=True),
        PruningMethod("magnitude", scores.magnitude, data_free=True),
        PruningMethod("magnitude_layerwise", scores.magnitude, data_free=True, default_scope="layerwise"),
        PruningMethod("snip", scores.snip, data_free=False),
        PruningMethod("grasp", scores.grasp, data_free=False),
        PruningMethod("synflow", scores.synflow, data_free=True, default_iterations=100),
        PruningMethod("connect", connect_score, data_free=True, default_iterations=100, iterate=iterate_connect),
    )
)
"""Every named pruning method, in the order tables and figures list them."""


def register_method(
    name: str,
    score_fn: ScoreFn,
    data_free: bool,
    default_iterations: int = 1,
    default_scope: Scope = "global",
    iterate: IterateFn | None = None,
) -> PruningMethod:
    """Make ``score_fn`` (signature of :data:`~netgraph.pruning.scores.ScoreFn`)
    available as ``METHODS[name]``, pruned by ``iterate`` if given, else by
    :func:`iterate_scores`."""
    if name in METHODS:
        raise NetgraphError(f"pruning method {name!r} is already registered")
    if default_iterations < 1:
        raise NetgraphError(f"default_iterations must be >= 1, got {default_iterations}")
    method = PruningMethod(name, score_fn, data_free, default_iterations, default_scope, iterate)
    METHODS[name] = method
    return method


def prune(
    model: nn.Module,
    method: str,
    compression: float | None = None,
    *,
    sparsity: float | None = None,
    params: Sequence[Param] | None = None,
    data: Iterable[Batch] | None = None,
    input_shape: Sequence[int] | None = None,
    iterations: int | None = None,
    scope: Scope | None = None,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Prune ``model`` in place with a named method, to exactly the target.

    The masks go through ``torch.nn.utils.prune`` (``weight_orig`` * ``weight_mask``),
    so the model saves and reloads like any pruned PyTorch model.

    Parameters
    ----------
    model : nn.Module
        The model; pruned in place.
    method : str
        A name from :data:`METHODS`: ``random``, ``magnitude``, ``magnitude_layerwise``,
        ``snip``, ``grasp`` (need ``data``), ``synflow``, ``connect``.
    compression : float, optional
        Target compression, total / remaining prunable weights (``100`` = 100x).
    sparsity : float, optional
        Target fraction of weights removed (``0.99``), instead of ``compression``.
    params : sequence of (module, name), optional
        The weights to prune; default every Linear and conv weight
        (:func:`~netgraph.parameters.prunable_parameters`).
    data : iterable of (inputs, targets), optional
        Batches for the data-driven scores.
    input_shape : sequence of int, optional
        One example's shape without the batch dimension; SynFlow and CoNNect need it.
    iterations : int, optional
        Score rounds on an exponential schedule (default: the method's, 100 for
        SynFlow and CoNNect, 1 for the others).
    scope : {"global", "layerwise"}, optional
        Rank all weights together or each layer on its own (default: the method's).
    seed : int
        Seed of the random score.

    Returns
    -------
    list of torch.Tensor
        The final boolean masks, one per pruned weight (True = kept).

    Examples
    --------
    >>> import netgraph as ng
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 2))
    >>> masks = ng.prune(model, "connect", compression=10, input_shape=(20,))
    >>> sum(int(m.sum()) for m in masks)  # 220 weights, 10x
    22
    """
    chosen = METHODS[method]
    return chosen.prune(
        model, prunable_parameters(model) if params is None else params,
        compression=compression, sparsity=sparsity, data=data, input_shape=input_shape,
        iterations=iterations, scope=scope, seed=seed,
    )
