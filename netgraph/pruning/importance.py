"""Torch-Pruning importances from the channel graph: CoNNect's channel centrality.

A channel's importance is its node centrality ``F_v B_v / phi`` (the share of
input-output path mass through it), summed over the coupled layers of a
Torch-Pruning group through the group's ``root_idxs``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function

from netgraph.connectivity.propagate import Flows, flows
from netgraph.graph.cache import cached_trace
from netgraph.graph.channels import ChannelGraph

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
        graph = cached_trace(self.model, self.input_shape)
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
