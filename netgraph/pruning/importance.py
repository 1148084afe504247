"""Torch-Pruning importances from the channel graph: CoNNect's channel centrality.

A channel's CoNNect importance is the share of input-output path mass lost when
Torch-Pruning removes it: the node centrality ``F_v B_v / phi`` of the channel
nodes the group deletes, mapped to the group's root channels through each
dependency's ``root_idxs``. A coupled channel that only feeds the norm layer of
the same group (a conv output read by its BatchNorm) carries exactly the paths
of that norm channel and is counted once, through the norm layer. The result is
the exact loss ``(phi - phi_without_channel) / phi`` whenever no input-output
path crosses the removed channel twice (a channel of a residual branch, a concat
input, a plain conv); for a channel of an identity-shortcut stream, which a path
can re-enter after leaving it, it is the first-order loss (each crossing counts).

Flows are computed once per model state: Torch-Pruning scores every group of a
step before it removes any, so a step costs one :func:`flows` call, not one per
group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function

from netgraph.connectivity.propagate import flows
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


def _state_key(model: nn.Module) -> tuple:
    """Changes whenever a parameter or buffer is replaced (pruning) or written in place."""
    return tuple((id(t), t._version, tuple(t.shape)) for t in (*model.parameters(), *model.buffers()))


class _ChannelMap:
    """One flows computation of a model state, read per module: each module's output
    nodes, their centralities, and which modules only feed a norm layer."""

    def __init__(self, graph: ChannelGraph) -> None:
        self.centrality = flows(graph).centrality()
        producers: dict[nn.Module, list] = {}
        for block in graph.blocks:
            if block.source.module is not None and block.kind in ("param", "diag"):
                producers.setdefault(block.source.module, []).append(block)
        # a module called twice has no single output: it is not scored
        self.nodes = {m: blocks[0].dst.nodes for m, blocks in producers.items() if len(blocks) == 1}
        group_of_node = graph.node_group
        readers: dict[int, list] = {}
        for block in graph.blocks:
            for group in np.unique(group_of_node[block.in_node]):
                readers.setdefault(int(group), []).append(block)
        self.feeds_only: dict[nn.Module, set[nn.Module]] = {}
        for module, nodes in self.nodes.items():
            out = readers.get(int(group_of_node[nodes[0]]), [])
            if out and all(b.kind == "diag" and b.n_out == len(nodes) for b in out):
                self.feeds_only[module] = {b.source.module for b in out}


class ConnectImportance(tp.importance.Importance):
    """Torch-Pruning importance: the path mass a group's channels carry.

    ``base`` (e.g. ``GroupMagnitudeImportance``) is multiplied in after both are
    normalised to mean 1 within the group, so magnitude (or Taylor) and
    connectivity both count and neither's scale decides.
    """

    def __init__(self, model: nn.Module, input_shape: Sequence[int], base: tp.importance.Importance | None = None) -> None:
        self.model = model
        self.input_shape = tuple(input_shape)
        self.base = base
        self._cache: tuple[tuple, _ChannelMap] | None = None
        self.flow_computations = 0

    def channel_map(self) -> _ChannelMap:
        """The flows of the model as it is now, computed once per model state."""
        key = _state_key(self.model)
        if self._cache is None or self._cache[0] != key:
            self.flow_computations += 1
            self._cache = (key, _ChannelMap(cached_trace(self.model, self.input_shape)))
        return self._cache[1]

    @torch.no_grad()
    def __call__(self, group: tp.Group) -> torch.Tensor:
        channels = self.channel_map()
        centrality = torch.from_numpy(channels.centrality)
        modules = {dep.target.module for dep, _ in group if dep.handler in _OUT_CHANNELS}
        importance = torch.zeros(len(group[0].idxs), dtype=torch.float64)
        for i, (dep, idxs) in enumerate(group):
            module = dep.target.module
            root = group[i].root_idxs
            if dep.handler not in _OUT_CHANNELS or module not in channels.nodes or any(r is None for r in root):
                continue
            if channels.feeds_only.get(module, set()) and channels.feeds_only[module] <= modules:
                continue  # its paths are the norm layer's: counted there
            values = centrality[torch.as_tensor(channels.nodes[module][list(idxs)])]
            importance.scatter_add_(0, torch.as_tensor(root), values)
        if self.base is not None:
            base = self.base(group)
            if base is None:
                return None
            importance = _mean_one(importance) * _mean_one(base.to(importance))
        return importance.float()


def _mean_one(values: torch.Tensor) -> torch.Tensor:
    mean = values.mean()
    return values / mean if mean > 0 else values
