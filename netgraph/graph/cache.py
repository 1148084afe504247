"""One traced graph per model: scores that re-read a model every round trace it once."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

from torch import nn

from netgraph.graph.channels import ChannelGraph
from netgraph.graph.tracer import trace

_GRAPHS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, ChannelGraph]] = weakref.WeakKeyDictionary()


def cached_trace(model: nn.Module, input_shape: Sequence[int]) -> ChannelGraph:
    """The model's channel graph, traced once per (model, input shape, parameter shapes).

    Blocks read live weights, so masks changed between rounds need no re-trace;
    a structural change of the model (new shapes) does. Pruning (``weight`` ->
    ``weight_orig`` + mask) is not a structural change."""
    shapes = sorted((name.removesuffix("_orig"), tuple(p.shape)) for name, p in model.named_parameters())
    key = (tuple(input_shape), tuple(shapes))
    cached = _GRAPHS.get(model)
    if cached is None or cached[0] != key:
        cached = (key, trace(model, input_shape=input_shape))
        _GRAPHS[model] = cached
    return cached[1]
