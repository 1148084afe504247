"""From command-line words to a model with weights: one place for every command."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import nn

from netgraph.errors import NetgraphError
from netgraph.text import first_line
from netgraph.training.checkpoint import apply_checkpoint, load_checkpoint
from netgraph.training.models import MODELS, build_model, default_input_shape


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """``"3,224,224"`` (or ``3x224x224``) -> ``(3, 224, 224)``."""
    if text is None:
        return None
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise NetgraphError(f"--input-shape must be comma-separated integers like 3,224,224, got '{text}'") from None
    if not shape or any(n <= 0 for n in shape):
        raise NetgraphError(f"--input-shape must be positive integers, got '{text}'")
    return shape


def resolve_model(
    name: str,
    checkpoint: str | Path | None = None,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    unsafe_pickle: bool = False,
) -> tuple[nn.Module, tuple[int, ...]]:
    """Build ``name`` (project, torchvision or ``package.module:factory``), load the
    checkpoint into it, and return it with its per-sample input shape."""
    state = load_checkpoint(checkpoint, unsafe_pickle=unsafe_pickle) if checkpoint else None
    shape = tuple(input_shape) if input_shape else default_input_shape(name)
    if isinstance(state, nn.Module):
        model = state
    else:
        classes = num_classes or (10 if name in MODELS or ":" in name else 1000)
        try:
            model = build_model(name, num_classes=classes, input_shape=shape)
        except NetgraphError:
            raise
        except Exception as error:  # a user factory's own failure: one line, not a traceback
            raise NetgraphError(f"building model '{name}' failed: {type(error).__name__}: {first_line(error)}") from None
        if state is not None:
            from netgraph.pruning.structured import STRUCTURE_KEY, resize_to_state

            if STRUCTURE_KEY in state:  # ``netgraph prune --structured``: replay the smaller widths
                state = resize_to_state(model, state)
            apply_checkpoint(model, state)
    if shape is None:
        raise NetgraphError(f"no default input shape for '{name}': pass --input-shape (e.g. 3,224,224)")
    return model, shape


def leaf_modules(model: nn.Module, names: Sequence[str]) -> list[type | str]:
    """``--leaf`` values: module qualnames, or class names of modules in ``model``."""
    qualnames = {n for n, _ in model.named_modules()}
    types = {type(m).__name__: type(m) for m in model.modules()}
    leaves: list[type | str] = []
    for name in names:
        if name in qualnames:
            leaves.append(name)
        elif name in types:
            leaves.append(types[name])
        else:
            raise NetgraphError(f"--leaf {name}: no submodule or module class of that name in {type(model).__name__}")
    return leaves
