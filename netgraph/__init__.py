"""netgraph: is your pruned network still connected?

Trace a PyTorch model into a weighted graph of its channels, measure whether its
inputs still reach its outputs, train it with the CoNNect regularizer and prune it
without letting it collapse. The data flows one way::

    model --trace--> ChannelGraph --flows--> Flows --analyze--> ConnectivityReport
                          |--CoNNect--> differentiable R = -log phi (training)
                          |--to_networkx--> networkx.DiGraph
    model --prune / structural_prune--> smaller model

Examples
--------
>>> import netgraph as ng
>>> from torch import nn
>>> model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
>>> graph = ng.trace(model, input_shape=(16,))
>>> report = ng.analyze(graph)
>>> report.disconnected, report.parameters
(False, 152)

Names are imported on first use, so ``import netgraph.training`` loads neither
the tracer nor Torch-Pruning.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("netgraph")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

#: public name -> the module that defines it
_EXPORTS = {
    "trace": "netgraph.graph.tracer",
    "ChannelGraph": "netgraph.graph.channels",
    "flows": "netgraph.connectivity.propagate",
    "Flows": "netgraph.connectivity.propagate",
    "analyze": "netgraph.connectivity.report",
    "ConnectivityReport": "netgraph.connectivity.report",
    "to_networkx": "netgraph.connectivity.export",
    "strip_dead_weights": "netgraph.connectivity.strip",
    "CoNNect": "netgraph.connect.regularizer",
    "METHODS": "netgraph.pruning.registry",
    "prune": "netgraph.pruning.registry",
    "structural_prune": "netgraph.pruning.structured",
    "train": "netgraph.training.engine",
    "TrainConfig": "netgraph.training.engine",
    "build_model": "netgraph.training.models",
    "compare": "netgraph.experiments.comparison",
    "NetgraphError": "netgraph.errors",
}

__all__ = [
    "analyze",
    "build_model",
    "ChannelGraph",
    "compare",
    "CoNNect",
    "ConnectivityReport",
    "flows",
    "Flows",
    "METHODS",
    "NetgraphError",
    "prune",
    "strip_dead_weights",
    "structural_prune",
    "to_networkx",
    "trace",
    "train",
    "TrainConfig",
    "__version__",
]

if TYPE_CHECKING:  # static tools see the names; at run time they load lazily
    from netgraph.connect.regularizer import CoNNect
    from netgraph.connectivity.export import to_networkx
    from netgraph.connectivity.propagate import Flows, flows
    from netgraph.connectivity.report import ConnectivityReport, analyze
    from netgraph.connectivity.strip import strip_dead_weights
    from netgraph.errors import NetgraphError
    from netgraph.experiments.comparison import compare
    from netgraph.graph.channels import ChannelGraph
    from netgraph.graph.tracer import trace
    from netgraph.pruning.registry import METHODS, prune
    from netgraph.pruning.structured import structural_prune
    from netgraph.training.engine import TrainConfig, train
    from netgraph.training.models import build_model


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'netgraph' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
