"""From command-line words to a model with weights and example inputs: one place for every command."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from netgraph.errors import NetgraphError
from netgraph.training.checkpoint import apply_checkpoint, load_checkpoint, read_torch_file
from netgraph.training.models import MODELS, build_model, default_input_shape

Shape = tuple[int, ...]


def parse_shape(text: str | None) -> Shape | None:
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


def per_sample(shape: Shape, rank: int | None) -> Shape:
    """One sample's shape: a leading batch of 1 (``1,3,224,224``, as PyTorch users
    write shapes) is dropped when the model takes samples of ``rank`` dims; another
    leading size is refused with an explanation, since netgraph analyses one sample."""
    if rank is None or len(shape) != rank + 1:
        return shape
    if shape[0] == 1:
        return shape[1:]
    raise NetgraphError(
        f"--input-shape {','.join(map(str, shape))} has a leading batch of {shape[0]}: give one sample's "
        f"shape ({','.join(map(str, shape[1:]))}) or a batch of 1"
    )


def _conv_rank(model: nn.Module) -> int | None:
    """Rank of one sample of a model whose first weight layer is a conv (channels plus
    its spatial dims); None when it starts with a Linear or an embedding (any rank)."""
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return 1 + len(module.kernel_size)
        if isinstance(module, (nn.Linear, nn.Embedding)):
            return None
    return None


def example_inputs(model: nn.Module, shapes: Sequence[Shape], dtype: str = "float") -> tuple[torch.Tensor, ...]:
    """One batch-of-one tensor per ``--input-shape``: floats, or (``--input-dtype long``)
    token ids below the size of the model's first embedding table."""
    from netgraph.graph.tracer import example_batch

    return tuple(example_batch(model, shape, torch.long if dtype == "long" else None) for shape in shapes)


def load_example_input(path: Path) -> Any:
    """A tensor, a tuple/list of tensors or a dict of tensors (keyword inputs) from a
    ``.pt`` file, read with the weights-only loader."""
    if not Path(path).is_file():
        raise NetgraphError(f"--example-input {path}: file not found")
    value = read_torch_file(Path(path))
    tensors = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else [value]
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise NetgraphError(f"--example-input {path} must hold a tensor, a tuple or a dict of tensors, "
                            f"got {type(value).__name__}")
    return tuple(value) if isinstance(value, list) else value


@contextlib.contextmanager
def _cwd_importable(name: str) -> Iterator[None]:
    """``module:factory`` resolves from the current directory, as ``python -c`` would."""
    if ":" not in name or os.getcwd() in sys.path:
        yield
        return
    sys.path.insert(0, os.getcwd())
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(os.getcwd())


def resolve_model(
    name: str,
    checkpoint: str | Path | None = None,
    input_shape: Sequence[int] | None = None,
    num_classes: int | None = None,
    unsafe_pickle: bool = False,
    need_shape: bool = True,
) -> tuple[nn.Module, Shape | None]:
    """Build ``name`` (project, torchvision or ``package.module:factory``), load the
    checkpoint into it, and return it with one sample's input shape (the model's
    default when none is given; with ``need_shape=False`` None when it has none)."""
    state = load_checkpoint(checkpoint, unsafe_pickle=unsafe_pickle) if checkpoint else None
    default = default_input_shape(name)  # also: an unknown name fails here, before any work
    shape = per_sample(tuple(input_shape), len(default) if default else None) if input_shape else None
    if isinstance(state, nn.Module):
        model = state
    else:
        classes = num_classes if num_classes is not None else (10 if name in MODELS or ":" in name else 1000)
        with _cwd_importable(name):
            model = build_model(name, num_classes=classes, input_shape=shape or default)
        if state is not None:
            from netgraph.pruning.structured import STRUCTURE_KEY, resize_to_state

            if STRUCTURE_KEY in state:  # ``netgraph prune --structured``: replay the smaller widths
                state = resize_to_state(model, state)
            apply_checkpoint(model, state)
    if shape is not None and default is None:
        shape = per_sample(shape, _conv_rank(model))
    shape = shape or default
    if shape is None and need_shape:
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
