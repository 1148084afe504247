"""Per-layer and per-network connectivity reports (what `netgraph analyze` prints).

Definitions (DESIGN.md section 2): a parameter is *alive* when it is nonzero
and its edge joins two alive nodes; *dead* parameters are nonzero but on no
input->output path. A layer has *collapsed* when no weight remains and is
*cut* when no alive edge remains. Effective compression is total / alive,
nominal compression total / nonzero, over prunable (Linear/conv/embedding) weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
    return _alive_edges(block, result.alive)


def _alive_edges(block: Block, alive: np.ndarray) -> torch.Tensor:
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
    reads the whole tensor (see :func:`_whole_alive_count`)."""
    if _read_whole(blocks):
        return _whole_alive_count(blocks[0], weight, nonzero, result.alive)
    return int(torch.count_nonzero(_alive_mask(blocks, result)))


def _read_whole(blocks: list[Block]) -> bool:
    """True when one block reads the layer's whole tensor (no slices shared with others)."""
    return len(blocks) == 1 and blocks[0].source.region() == (slice(None),)


def _whole_alive_count(block: Block, weight: torch.Tensor, nonzero: int, alive: np.ndarray) -> int:
    """Alive weights of a tensor ``block`` reads whole, given the alive nodes: all its
    edges alive -> every nonzero weight, none -> 0, else the mask's count."""
    channels, outputs = alive_channels(block, alive), alive[block.dst.nodes]
    if channels.all() and outputs.all():
        return nonzero
    if not (channels.any() and outputs.any()):
        return 0
    mask = block.source.to_parameter(_alive_edges(block, alive)) & (weight != 0).cpu()
    return int(torch.count_nonzero(mask))


def count_nonzero(tensor: torch.Tensor) -> int:
    """``torch.count_nonzero``, several times faster for 16- and 32-bit floats: their bit
    patterns with the sign bit shifted out are zero exactly for +0 and -0 (NaN counts)."""
    bits = {torch.bfloat16: torch.int16, torch.float16: torch.int16, torch.float32: torch.int32}.get(tensor.dtype)
    if bits is None or tensor.device.type != "cpu" or not tensor.is_contiguous():
        return int(torch.count_nonzero(tensor))
    return int(torch.count_nonzero(tensor.view(bits) << 1))


def _nonfinite(weight: torch.Tensor) -> int:
    """NaN/Inf count; a finite sum means none (cheap)."""
    return 0 if bool(torch.isfinite(weight.sum())) else int((~torch.isfinite(weight)).sum())


@dataclass
class LayerCounts:
    """What the report reads from a layer's tensor: counted once, where it is loaded."""

    nonzero: int
    alive: int
    nonfinite: int
    constant_units: int


def counting_backward(graph: ChannelGraph) -> tuple[dict[str, LayerCounts], Callable[[Block, np.ndarray, np.ndarray], None]]:
    """``(counts, hook)``: pass ``hook`` as ``flows(..., on_backward=hook)`` and ``counts``
    to :func:`analyze`, so a streamed layer's tensor is read twice (forward and backward
    sweeps), not three times.

    The hook counts every layer that one block reads whole: nonzero, alive and
    non-finite weights and constant units. They are exact there: reachability from the
    inputs is final after the forward sweep, and the block's outputs have had all their
    consumers in the backward one; an input node may still miss later reaches, but a
    nonzero edge into an alive output just gave it one, and only such edges count."""
    whole = {key: blocks[0] for key, blocks in graph.layers().items() if _read_whole(blocks)}
    counts: dict[str, LayerCounts] = {}

    def hook(block: Block, reached: np.ndarray, reaches: np.ndarray) -> None:
        if block.kind != "param" or whole.get(layer_key(block)) is not block:
            return
        weight = block.source.parameter().detach()
        nonzero = count_nonzero(weight)
        alive = _whole_alive_count(block, weight, nonzero, reached & reaches)
        constants = len(_constant_units(block, reached, reaches))  # its outputs' reaches are final too
        counts[layer_key(block)] = LayerCounts(nonzero, alive, _nonfinite(weight), constants)

    return counts, hook


def constant_units(block: Block, result: Flows) -> np.ndarray:
    """Local indices of units no input reaches but that add a nonzero constant
    on the way to an output (a bias or a BatchNorm shift)."""
    return _constant_units(block, result.reached, result.reaches_output)


def _constant_units(block: Block, reached: np.ndarray, reaches: np.ndarray) -> np.ndarray:
    nodes = block.dst.nodes
    silent = ~reached[nodes] & reaches[nodes]
    if not silent.any():  # the common case: no read of the bias at all
        return np.array([], dtype=np.int64)
    with loaded(block.source.module):
        bias = block.source.bias()
        if bias is None:
            return np.array([], dtype=np.int64)
        nonzero = bias.detach().cpu() != 0
    return np.flatnonzero(silent & nonzero.numpy())


def analyze(
    graph: ChannelGraph, result: Flows | None = None, counts: dict[str, LayerCounts] | None = None
) -> ConnectivityReport:
    """The connectivity report of ``graph``: alive and dead weights, collapsed and cut layers.

    Parameters
    ----------
    graph : ChannelGraph
        From :func:`netgraph.trace`.
    result : Flows, optional
        Its flows, when already computed (else computed here).
    counts : dict, optional
        Layers already counted while ``result`` was propagated (see
        :func:`counting_backward`); their tensors are not read again.

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
    counts = counts or {}
    for key, blocks in graph.layers().items():
        if key in counts:
            layers.append(_layer_report(key, blocks, result, centrality, counts[key]))
            continue
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


def _layer_report(key: str, blocks: list[Block], result: Flows, centrality: np.ndarray,
                  counted: LayerCounts | None = None) -> LayerReport:
    weight = blocks[0].source.parameter().detach()  # on the meta device when ``counted``: its shape
    if counted is None:
        nonzero = count_nonzero(weight)
        counted = LayerCounts(nonzero, _alive_count(blocks, weight, nonzero, result), _nonfinite(weight),
                              sum(len(constant_units(b, result)) for b in blocks))
    nonzero, alive, nonfinite = counted.nonzero, counted.alive, counted.nonfinite
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
        constant_units=counted.constant_units,
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


__all__ = ["ConnectivityReport", "LayerCounts", "LayerReport", "alive_weight_masks", "analyze", "constant_units",
           "count_nonzero", "counting_backward", "layer_key"]
