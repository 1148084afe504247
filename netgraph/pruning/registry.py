"""The named pruning methods: ``METHODS[name].prune(model, params, compression=...)``.

Listed here explicitly, in one place, rather than registered as a side effect of
importing the module that defines a score. A user's own score joins with
:func:`register_method`.
"""

from __future__ import annotations

from netgraph.errors import NetgraphError
from netgraph.pruning import scores
from netgraph.pruning.masks import Scope
from netgraph.pruning.methods import IterateFn, PruningMethod
from netgraph.pruning.path_mass import connect_score, iterate_connect
from netgraph.pruning.scores import ScoreFn


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
