"""Free compression: zero the dead weights of a model without changing its outputs.

A dead weight sits on no input->output path. Zeroing it is exact unless its
input is a *constant* unit (no input reaches it, but a bias makes it nonzero)
feeding something that reaches an output: then the weight carries a constant.
For a Linear layer that constant is folded into the bias (exact); elsewhere
(convs see zero padding at borders, so no bias can absorb the constant) such
weights are kept. The result is verified on random inputs before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from netgraph.connectivity.propagate import Flows
from netgraph.connectivity.report import alive_weight_masks
from netgraph.errors import NetgraphError
from netgraph.graph.channels import Block, ChannelGraph
from netgraph.graph.weights import DenseWeight
from netgraph.training.checkpoint import save_checkpoint


@dataclass
class StripOutcome:
    path: Path
    zeroed: int
    folded: int
    kept: int
    max_output_change: float

    def summary(self) -> str:
        return (
            f"wrote {self.path}: {self.zeroed:,} dead weights zeroed ({self.folded:,} of them folded "
            f"into biases), {self.kept:,} kept because they carry constants into convs; "
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


def strip_dead_weights(
    graph: ChannelGraph, result: Flows, input_shape: Sequence[int], path: str | Path, trials: int = 8
) -> StripOutcome:
    """Zero ``graph.model``'s dead weights (in place), verify, and save its state dict to ``path``."""
    model = graph.model
    param = next(model.parameters())
    inputs = torch.randn(trials, *input_shape, device=param.device, dtype=param.dtype)
    alive = alive_weight_masks(graph, result)
    backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
    calls = {b.source.module: 0 for b in graph.param_blocks()}
    for block in graph.param_blocks():
        calls[block.source.module] += 1
    linear_inputs: dict[nn.Module, torch.Tensor] = {}
    hooks = [
        b.source.module.register_forward_hook(lambda m, args, out: linear_inputs.__setitem__(m, args[0].detach()))
        for b in graph.param_blocks()
        if _foldable(b, calls)
    ]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            before = _outputs(model, inputs)
            for hook in hooks:
                hook.remove()
            zeroed = folded = kept = 0
            for key, blocks in graph.layers().items():
                block = blocks[0]
                weight = block.source.parameter().detach()
                dead = (weight != 0).cpu() & ~alive[key]
                constant = torch.zeros_like(dead)
                for b in blocks:
                    constant[b.source.region()] |= b.source.to_parameter(_carries_constant(b, result))
                constant &= dead
                if len(blocks) == 1 and _foldable(block, calls) and constant.any():
                    value = linear_inputs[block.source.module].reshape(-1, weight.shape[1]).mean(0)
                    shift = (weight * constant.to(weight.device)) @ value
                    block.source.module.bias.data += shift
                    folded += int(constant.sum())
                else:
                    kept += int(constant.sum())
                    dead &= ~constant
                _zero(block.source.module, block.source.param_name, dead)
                zeroed += int(dead.sum())
            after = _outputs(model, inputs)
    finally:
        model.train(training)
    change = float((after - before).abs().max()) if before.numel() else 0.0
    tolerance = 1e-4 * (1.0 + float(before.abs().max()))
    if not change <= tolerance:
        model.load_state_dict(backup)
        raise NetgraphError(
            f"zeroing dead weights changed the outputs by {change:.3g} (> {tolerance:.3g}); nothing written"
        )
    save_checkpoint(model.state_dict(), path)
    return StripOutcome(Path(path), zeroed, folded, kept, change)
