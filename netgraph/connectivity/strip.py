"""Free compression: zero the dead weights of a model without changing its outputs.

A dead weight sits on no input->output path. Zeroing it is exact unless its
input is a *constant* unit (no input reaches it, but a bias makes it nonzero)
feeding something that reaches an output: then the weight carries a constant.
For a Linear layer that constant is folded into the bias (exact); elsewhere
(convs see zero padding at borders, so no bias can absorb the constant) such
weights are kept. The result is verified on random inputs before anything is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from netgraph.connectivity.propagate import Flows
from netgraph.connectivity.report import alive_weight_masks
from netgraph.errors import NetgraphError
from netgraph.graph.channels import Block, ChannelGraph, layer_key
from netgraph.graph.weights import DenseWeight
from netgraph.modes import eval_mode
from netgraph.training.checkpoint import save_checkpoint


@dataclass
class StripOutcome:
    """What :func:`strip_dead_weights` did, and the compression it realised."""

    path: Path
    zeroed: int
    folded: int
    kept: int
    max_output_change: float
    parameters: int
    nonzero_before: int
    nonzero_after: int

    @property
    def compression_before(self) -> float:
        return self.parameters / self.nonzero_before if self.nonzero_before else math.inf

    @property
    def compression_after(self) -> float:
        return self.parameters / self.nonzero_after if self.nonzero_after else math.inf

    def summary(self) -> str:
        kept = (f", {self.kept:,} kept because they carry nonzero constants into convs" if self.kept else "")
        return (
            f"wrote {self.path}: {self.zeroed:,} dead weights zeroed ({self.folded:,} of them folded into "
            f"biases){kept}; compression {self.compression_before:.2f}x -> {self.compression_after:.2f}x; "
            f"max output change {self.max_output_change:.2e} on random inputs"
        )


def _carries_constant(block: Block, result: Flows) -> torch.Tensor:
    """Grouped-form: edges whose input channel no input reaches but whose output reaches an output."""
    reached = block.per_channel(result.reached.astype(np.float64)) > 0
    useful = result.reaches_output[block.dst.nodes]
    return torch.from_numpy(~reached[block.channel_index()] & useful[:, None])


def _foldable(block: Block, counts: dict[nn.Module, int]) -> bool:
    """A plain Linear called once with a bias: a constant input folds exactly into its bias."""
    source = block.source
    return (
        isinstance(source, DenseWeight)
        and isinstance(source.module, nn.Linear)
        and source.rows is None
        and source.module.bias is not None
        and counts.get(source.module, 0) == 1
    )


def _zero(module: nn.Module, name: str, where: torch.Tensor) -> None:
    mask = getattr(module, f"{name}_mask", None)
    target = mask if mask is not None else getattr(module, name)
    target.data[where.to(target.device)] = 0


def _outputs(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    out = model(inputs)
    return out if isinstance(out, torch.Tensor) else torch.cat([o.flatten(1) for o in out if isinstance(o, torch.Tensor)], 1)


class _InputProbe:
    """Forward hooks on the modules of once-called blocks: the mean input of a foldable
    Linear, and for every module whether each input channel was exactly zero
    throughout (a constant unit that outputs 0 carries nothing)."""

    def __init__(self, graph: ChannelGraph, calls: dict[nn.Module, int]) -> None:
        self.mean: dict[nn.Module, torch.Tensor] = {}
        self.silent: dict[nn.Module, torch.Tensor] = {}
        self.hooks = [
            b.source.module.register_forward_hook(self._record)
            for b in graph.param_blocks()
            if calls[b.source.module] == 1 and isinstance(b.source.module, (nn.Linear, nn.modules.conv._ConvNd))
        ]

    def _record(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        x = args[0].detach()
        channels = x.movedim(-1 if isinstance(module, nn.Linear) else 1, 0).flatten(1)  # (in channels, values)
        self.silent[module] = (channels == 0).all(dim=1).cpu()
        if isinstance(module, nn.Linear):
            self.mean[module] = channels.mean(dim=1)

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()


def strip_dead_weights(
    graph: ChannelGraph, result: Flows, input_shape: Sequence[int], path: str | Path, trials: int = 8
) -> StripOutcome:
    """Zero ``graph.model``'s dead weights (in place), verify, and save its state dict to ``path``.

    Parameters
    ----------
    graph : ChannelGraph
    result : Flows
        Its flows (they say which weights are dead).
    input_shape : sequence of int
        One sample's shape, for the random verification inputs.
    path : str or PathLike
        Where the stripped state dict goes (written atomically, only on success).
    trials : int
        Random inputs the outputs are compared on.

    Returns
    -------
    StripOutcome
        Counts, the realised compression and the largest output change.

    A dead weight whose input unit carries a constant is folded into the next Linear
    bias (exact), zeroed when that constant is exactly 0 on every trial input, and
    kept otherwise. Nothing is written, and the model is restored, when the outputs
    are not finite to begin with or when they change.

    Examples
    --------
    >>> import tempfile, torch, netgraph as ng
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> with torch.no_grad():
    ...     model[2].weight[:, 0] = 0  # unit 0's 4 input weights are now dead
    >>> graph = ng.trace(model, input_shape=(4,))
    >>> outcome = ng.strip_dead_weights(graph, ng.flows(graph), (4,), tempfile.mktemp(suffix=".pt"))
    >>> outcome.zeroed, outcome.max_output_change
    (4, 0.0)
    """
    model = graph.model
    param = next(model.parameters())
    inputs = torch.randn(trials, *input_shape, device=param.device, dtype=param.dtype)
    alive = alive_weight_masks(graph, result)
    backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
    calls = {b.source.module: 0 for b in graph.param_blocks()}
    for block in graph.param_blocks():
        calls[block.source.module] += 1
    probe = _InputProbe(graph, calls)
    try:
        with torch.no_grad(), eval_mode(model):
            before = _outputs(model, inputs)
            probe.remove()
            if not bool(torch.isfinite(before).all()):
                raise NetgraphError(
                    "the model's outputs are already NaN/Inf on random inputs, so stripping cannot be verified; "
                    "nothing written"
                )
            nonzero_before = zeroed = folded = kept = 0
            for blocks in graph.layers().values():
                block = blocks[0]
                module = block.source.module
                weight = block.source.parameter().detach()
                nonzero_before += int(torch.count_nonzero(weight))
                dead = (weight != 0).cpu() & ~alive[layer_key(block)]
                constant = torch.zeros_like(dead)
                for b in blocks:
                    constant[b.source.region()] |= b.source.to_parameter(_carries_constant(b, result))
                constant &= dead
                silent = probe.silent.get(module)
                if constant.any() and silent is not None and silent.numel() == weight.shape[1]:
                    # a constant unit that outputs exactly 0 carries nothing: its weights go
                    constant &= ~silent.reshape(1, -1, *([1] * (weight.dim() - 2))).expand_as(constant)
                if len(blocks) == 1 and _foldable(block, calls) and constant.any():
                    shift = (weight * constant.to(weight.device)) @ probe.mean[module]
                    module.bias.data += shift
                    folded += int(constant.sum())
                else:
                    kept += int(constant.sum())
                    dead &= ~constant
                _zero(module, block.source.param_name, dead)
                zeroed += int(dead.sum())
            after = _outputs(model, inputs)
        change = float((after - before).abs().max()) if before.numel() else 0.0
        tolerance = 1e-4 * (1.0 + float(before.abs().max()))
        if not change <= tolerance:
            raise NetgraphError(
                f"zeroing dead weights changed the outputs by {change:.3g} (> {tolerance:.3g}); nothing written"
            )
    except BaseException:
        model.load_state_dict(backup)
        raise
    finally:
        probe.remove()
    save_checkpoint(model.state_dict(), path)
    parameters = sum(b[0].source.parameter().numel() for b in graph.layers().values())
    return StripOutcome(Path(path), zeroed, folded, kept, change, parameters, nonzero_before, nonzero_before - zeroed)
