"""CoNNect as a pruning score: per weight (unstructured) and per channel group (DepGraph).

The weight score is its share of input-output path mass ``F_u |w| B_v / phi``
(data-free, :func:`netgraph.connect.connect_scores`); iterated on SynFlow's
exponential schedule it never removes the last path through a layer while
another weight of lower share remains. The channel score is a node's
centrality ``F_v B_v / phi``, summed over every coupled layer of a
Torch-Pruning group.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function

from netgraph.connect import connect_scores
from netgraph.connectivity import Flows, flows
from netgraph.errors import NetgraphError
from netgraph.graph import ChannelGraph
from netgraph.pruning.masks import Param
from netgraph.pruning.methods import register_method
from netgraph.pruning.scores import ScoreContext
from netgraph.trace import trace
from netgraph.weights import reuse_weights

_GRAPHS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, ChannelGraph]] = weakref.WeakKeyDictionary()


def channel_graph(model: nn.Module, input_shape: Sequence[int]) -> ChannelGraph:
    """The model's channel graph, traced once per (model, input shape, parameter shapes).

    Blocks read live weights, so masks changed between rounds need no re-trace;
    a structural change of the model (new shapes) does."""
    # Pruning (weight -> weight_orig + mask) is not a structural change: no re-trace.
    shapes = sorted((name.removesuffix("_orig"), tuple(p.shape)) for name, p in model.named_parameters())
    key = (tuple(input_shape), tuple(shapes))
    cached = _GRAPHS.get(model)
    if cached is None or cached[0] != key:
        cached = (key, trace(model, input_shape=input_shape))
        _GRAPHS[model] = cached
    return cached[1]


def connect(model: nn.Module, params: Sequence[Param], ctx: ScoreContext) -> list[torch.Tensor]:
    """Data-free CoNNect score of every weight in ``params`` (higher = keep)."""
    if ctx.input_shape is None:
        raise NetgraphError("the connect score needs the model's input shape")
    graph = channel_graph(model, ctx.input_shape)
    with torch.no_grad(), reuse_weights():  # flows and scores read each weight once
        scores = connect_scores(graph, flows(graph))
    names = {module: name for name, module in model.named_modules()}
    out = []
    for module, name in params:
        score = scores.get(f"{names[module]}.{name}")
        if score is None:  # built only when missing (not as an eagerly evaluated default)
            score = torch.zeros(module.get_parameter(f"{name}_orig" if hasattr(module, f"{name}_orig") else name).shape)
        out.append(score.to(ctx.device))
    return out


register_method("connect", connect, data_free=True, default_iterations=100)

_OUT_CHANNELS = {
    function.prune_conv_out_channels,
    function.prune_depthwise_conv_out_channels,
    function.prune_linear_out_channels,
    function.prune_batchnorm_out_channels,
    function.prune_groupnorm_out_channels,
    function.prune_layernorm_out_channels,
}


class ConnectImportance(tp.importance.Importance):
    """Torch-Pruning importance: the path-mass centrality of a group's channels,
    summed over its coupled layers, optionally multiplied into another importance
    (e.g. ``GroupMagnitudeImportance``) so magnitude and connectivity both count."""

    def __init__(self, model: nn.Module, input_shape: Sequence[int], base: tp.importance.Importance | None = None) -> None:
        self.model = model
        self.input_shape = tuple(input_shape)
        self.base = base

    def _flows(self) -> tuple[ChannelGraph, Flows]:
        graph = channel_graph(self.model, self.input_shape)
        return graph, flows(graph)

    @torch.no_grad()
    def __call__(self, group: tp.Group) -> torch.Tensor:
        graph, result = self._flows()
        centrality = torch.from_numpy(result.centrality())
        nodes = {block.source.module: block.dst.nodes for block in graph.blocks if block.source.module is not None}
        importance = torch.zeros(len(group[0].idxs), dtype=torch.float64)
        for i, (dep, idxs) in enumerate(group):
            module = dep.target.module
            root = group[i].root_idxs
            if dep.handler not in _OUT_CHANNELS or module not in nodes or any(r is None for r in root):
                continue
            values = centrality[torch.as_tensor(nodes[module][list(idxs)])]
            importance.scatter_add_(0, torch.as_tensor(root), values)
        if self.base is not None:
            importance = importance * self.base(group).to(importance)
        return importance.float()
