"""Per-layer and per-network connectivity reports (what `netgraph analyze` prints).

Definitions (DESIGN.md section 2): a parameter is *alive* when it is nonzero
and its edge joins two alive nodes; *dead* parameters are nonzero but on no
input->output path. A layer has *collapsed* when no weight remains and is
*cut* when no alive edge remains. Effective compression is total / alive,
nominal compression total / nonzero, over prunable (Linear/conv/embedding) weights.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from netgraph.connectivity.propagate import Flows, flows
from netgraph.graph.channels import Block, ChannelGraph, layer_key
from netgraph.parameters import loaded

SCHEMA_VERSION = 1


@dataclass
class LayerReport:
    """Connectivity of one prunable parameter tensor."""

    name: str
    shape: list[int]
    parameters: int
    nonzero: int
    alive: int
    dead: int
    nonfinite: int
    in_width: int
    in_alive: int
    out_width: int
    out_alive: int
    path_share: float
    constant_units: int
    collapsed: bool
    cut: bool


@dataclass
class ConnectivityReport:
    """Connectivity of a whole network: what :func:`analyze` returns.

    ``to_dict()`` is the JSON report (``netgraph analyze --json``; README lists the
    keys). ``bottleneck`` is the layer keeping the smallest share of its weights
    alive, or, in a disconnected net, the layer where the inputs die.

    Examples
    --------
    >>> import netgraph as ng
    >>> model = ng.build_model("lenet300")
    >>> _ = ng.prune(model, "magnitude", compression=1000)
    >>> report = ng.analyze(ng.trace(model, input_shape=(1, 28, 28)))
    >>> report.disconnected, report.bottleneck in report.collapsed_layers
    (True, True)
    >>> sorted(report.to_dict())[:4]
    ['alive', 'bottleneck', 'collapsed_layers', 'constant_units']
    """

    model: str
    nodes: int
    edges: int
    log_phi: float
    disconnected: bool
    inputs: int
    inputs_alive: int
    outputs: int
    outputs_alive: int
    parameters: int
    nonzero: int
    alive: int
    dead: int
    nominal_compression: float
    effective_compression: float
    collapsed_layers: list[str]
    cut_layers: list[str]
    bottleneck: str | None
    constant_units: int
    nonfinite_weights: int
    layers: list[LayerReport] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready dict; infinities (log_phi of a disconnected net, compression
        of an empty one) become ``null``."""
        data = asdict(self)
        data = {"schema_version": SCHEMA_VERSION, **data}
        return _finite_or_none(data)


def _finite_or_none(value):  # type: ignore[no-untyped-def]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def alive_channels(block: Block, alive: np.ndarray) -> np.ndarray:
    """Per input channel of ``block``: fed by at least one alive node."""
    return block.per_channel(alive.astype(np.float64)) > 0


def alive_edges(block: Block, result: Flows) -> torch.Tensor:
    """Grouped-form boolean: edge joins an alive input channel to an alive output node."""
    alive = result.alive
    # Row o reads its group's channels: repeat per group (no (n_out, in) index array).
    chan = np.repeat(alive_channels(block, alive).reshape(block.groups, -1), block.n_out // block.groups, axis=0)
    return torch.from_numpy(chan & alive[block.dst.nodes][:, None])


def alive_weight_masks(graph: ChannelGraph, result: Flows) -> dict[str, torch.Tensor]:
    """Per prunable layer (``module.param``), a boolean mask of its alive weights."""
    return {key: _alive_mask(blocks, result) for key, blocks in graph.layers().items()}


def _alive_mask(blocks: list[Block], result: Flows) -> torch.Tensor:
    """Boolean mask of the alive weights of one layer (the tensor its ``blocks`` read)."""
    weight = blocks[0].source.parameter().detach()
    mask = torch.zeros(weight.shape, dtype=torch.bool)
    for block in blocks:
        region = block.source.region()
        edges = block.source.to_parameter(alive_edges(block, result))
        mask[region] |= edges & (weight[region] != 0).cpu()
    return mask


def _alive_count(blocks: list[Block], weight: torch.Tensor, nonzero: int, result: Flows) -> int:
    """``_alive_mask(blocks, result).sum()`` without the full-size mask when one block
    reads the whole tensor: all its edges alive -> every nonzero weight, none -> 0."""
    if len(blocks) == 1 and blocks[0].source.region() == (slice(None),):
        edges = alive_edges(blocks[0], result)
        if bool(edges.all()):
            return nonzero
        if not bool(edges.any()):
            return 0
        mask = blocks[0].source.to_parameter(edges) & (weight != 0).cpu()
        return int(torch.count_nonzero(mask))
    return int(torch.count_nonzero(_alive_mask(blocks, result)))


def constant_units(block: Block, result: Flows) -> np.ndarray:
    """Local indices of units no input reaches but that add a nonzero constant
    on the way to an output (a bias or a BatchNorm shift)."""
    nodes = block.dst.nodes
    silent = ~result.reached[nodes] & result.reaches_output[nodes]
    if not silent.any():  # the common case: no read of the bias at all
        return np.array([], dtype=np.int64)
    with loaded(block.source.module):
        bias = block.source.bias()
        if bias is None:
            return np.array([], dtype=np.int64)
        nonzero = bias.detach().cpu() != 0
    return np.flatnonzero(silent & nonzero.numpy())


def analyze(graph: ChannelGraph, result: Flows | None = None) -> ConnectivityReport:
    """The connectivity report of ``graph``: alive and dead weights, collapsed and cut layers.

    Parameters
    ----------
    graph : ChannelGraph
        From :func:`netgraph.trace`.
    result : Flows, optional
        Its flows, when already computed (else computed here).

    Returns
    -------
    ConnectivityReport

    Examples
    --------
    >>> import torch, netgraph as ng
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> with torch.no_grad():
    ...     model[2].weight[:, 0] = 0  # hidden unit 0 reaches no output
    >>> report = ng.analyze(ng.trace(model, input_shape=(4,)))
    >>> report.disconnected, report.nonzero, report.alive, report.dead
    (False, 16, 12, 4)
    """
    result = result if result is not None else flows(graph)
    centrality = result.centrality()  # once, not per block
    layers = []
    for key, blocks in graph.layers().items():
        with loaded(*(b.source.module for b in blocks)):
            layers.append(_layer_report(key, blocks, result, centrality))
    total = sum(layer.parameters for layer in layers)
    nonzero = sum(layer.nonzero for layer in layers)
    alive = sum(layer.alive for layer in layers)
    constants = sum(len(constant_units(b, result)) for b in graph.blocks if b.kind == "diag")
    alive_nodes = result.alive
    return ConnectivityReport(
        model=type(graph.model).__name__,
        nodes=graph.n_nodes,
        edges=graph.n_edges(),
        log_phi=result.log_phi,
        disconnected=result.disconnected,
        inputs=len(graph.input_nodes),
        inputs_alive=int(alive_nodes[graph.input_nodes].sum()),
        outputs=len(graph.output_nodes),
        outputs_alive=int(alive_nodes[graph.output_nodes].sum()),
        parameters=total,
        nonzero=nonzero,
        alive=alive,
        dead=nonzero - alive,
        nominal_compression=total / nonzero if nonzero else math.inf,
        effective_compression=total / alive if alive else math.inf,
        collapsed_layers=[layer.name for layer in layers if layer.collapsed],
        cut_layers=[layer.name for layer in layers if layer.cut],
        bottleneck=_cause(graph, result, layers) if result.disconnected else _bottleneck(layers),
        constant_units=constants + sum(layer.constant_units for layer in layers),
        nonfinite_weights=sum(layer.nonfinite for layer in layers),
        layers=layers,
    )


def _layer_report(key: str, blocks: list[Block], result: Flows, centrality: np.ndarray) -> LayerReport:
    weight = blocks[0].source.parameter().detach()
    nonzero = int(torch.count_nonzero(weight))
    alive = _alive_count(blocks, weight, nonzero, result)
    # A finite sum means no NaN/Inf (cheap); otherwise count them.
    nonfinite = 0 if bool(torch.isfinite(weight.sum())) else int((~torch.isfinite(weight)).sum())
    alive_nodes = result.alive
    return LayerReport(
        name=key,
        shape=list(weight.shape),
        parameters=weight.numel(),
        nonzero=nonzero,
        alive=alive,
        dead=nonzero - alive,
        nonfinite=nonfinite,
        in_width=max(b.n_in for b in blocks),
        in_alive=max(int(alive_channels(b, alive_nodes).sum()) for b in blocks),
        out_width=sum(b.n_out for b in blocks),
        out_alive=sum(int(alive_nodes[b.dst.nodes].sum()) for b in blocks),
        path_share=sum(float(centrality[b.dst.nodes].sum()) for b in blocks),
        constant_units=sum(len(constant_units(b, result)) for b in blocks),
        collapsed=nonzero == 0,
        cut=alive == 0,
    )


def _cause(graph: ChannelGraph, result: Flows, layers: list[LayerReport]) -> str | None:
    """Where a disconnected net loses its inputs: the first layer, in topological
    order, that inputs reach but whose outputs they do not (a collapsed layer when
    one qualifies, since a branch can die beside a path that goes on elsewhere)."""
    collapsed = {layer.name for layer in layers if layer.collapsed}
    dying = [key for key, blocks in graph.layers().items()
             if any(result.reached[b.src].any() and not result.reached[b.dst.nodes].any() for b in blocks)]
    return next((key for key in dying if key in collapsed), dying[0] if dying else _bottleneck(layers))


def _bottleneck(layers: list[LayerReport]) -> str | None:
    """The layer keeping the smallest share of its weights alive (ties: fewest alive outputs)."""
    if not layers:
        return None
    return min(layers, key=lambda layer: (layer.alive / max(layer.parameters, 1), layer.out_alive)).name


__all__ = ["ConnectivityReport", "LayerReport", "analyze", "alive_weight_masks", "constant_units", "layer_key"]
