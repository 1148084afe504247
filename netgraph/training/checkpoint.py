"""Reading and writing weights safely.

``torch.load`` always runs with ``weights_only=True``; a pickled full model
needs the explicit ``unsafe_pickle`` opt-in. Checkpoints saved from
``torch.nn.utils.prune`` (``weight_orig`` + ``weight_mask``) load into a fresh
model by re-creating the masks. Every failure is a one-line
:class:`~netgraph.errors.CheckpointError`.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune

from netgraph.atomic import atomic_torch_save, atomic_write
from netgraph.errors import CheckpointError
from netgraph.text import bounded_list, error_line, first_line

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
OPTIONAL_KEYS = ("num_batches_tracked",)


# Opcodes that import a global (the extension registry ones name globals by code).
_IMPORT_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "EXT1", "EXT2", "EXT4"})


def load_checkpoint(path: str | Path, unsafe_pickle: bool = False) -> dict[str, torch.Tensor] | nn.Module:
    """A state dict from ``.pt``/``.pth``/``.safetensors`` (or, with ``unsafe_pickle``,
    a pickled ``nn.Module``). Training checkpoints wrapping the weights under
    ``state_dict``/``model`` are unwrapped."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"checkpoint is a directory, not a file: {path}")
    if path.suffix == ".safetensors":
        return _load_safetensors(path)
    return _unwrap(read_torch_file(path, unsafe_pickle), path)


def read_torch_file(path: Path, unsafe_pickle: bool = False) -> Any:
    """``torch.load`` (weights only unless ``unsafe_pickle``) whose every failure is one
    :class:`CheckpointError` line that says what the file is: pickled code, pickled
    objects the safe loader refuses, or garbage."""
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=not unsafe_pickle)
    except pickle.UnpicklingError as error:
        # The weights-only unpickler refuses code (a global it does not allow), objects
        # it has no rule for, and garbage; the pickle itself tells which (never run).
        kind = "code" if "global" in str(error).lower() else _legacy_pickle_kind(path)
        if kind == "code":
            raise CheckpointError(
                f"{path} contains pickled code, not just weights; pass unsafe_pickle=True only if you trust its source"
            ) from None
        if kind == "objects":
            raise CheckpointError(
                f"{path} holds pickled objects the safe loader refuses ({_refusal(error)}); "
                "save a state dict of tensors, or pass unsafe_pickle=True if you trust its source"
            ) from None
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt pickle)") from None
    except Exception as error:  # noqa: BLE001 - arbitrary bytes fail in arbitrary ways
        reason = first_line(error).split(". ")[0]
        if not any(ch.isalpha() for ch in reason):  # KeyError: 101 and the like
            reason = f"{type(error).__name__} {reason}".strip()
        raise CheckpointError(f"{path} is corrupt or truncated ({reason})") from None
    return obj


def _legacy_pickle_kind(path: Path) -> str | None:
    """``"code"`` when ``path`` holds a well-formed legacy pickle that imports a
    global, ``"objects"`` when it holds one that does not, None when it is no pickle.

    ``pickletools.dis`` checks the stack and memo without executing anything, so
    random bytes that happen to start with a pickle opcode are not mistaken for one.
    """
    data = path.read_bytes()
    try:
        pickletools.dis(data, out=io.StringIO())
    except Exception:  # noqa: BLE001 - anything unparsable is not a pickle
        return None
    return "code" if any(op.name in _IMPORT_OPCODES for op, _, _ in pickletools.genops(data)) else "objects"


def _refusal(error: Exception) -> str:
    """The weights-only unpickler's own reason, without its boilerplate."""
    text = str(error)
    _, marker, rest = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (rest if marker else text).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        reason = error_line(error)
        raise CheckpointError(f"{path} is not a valid safetensors file ({reason})") from None


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor] | nn.Module:
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
            if isinstance(inner, nn.Module):
                return inner
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
    raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")


def check_state_matches(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor], what: str, optional: tuple[str, ...] = ()
) -> None:
    """Refuse a state dict whose keys or shapes differ from ``expected``, naming them.

    ``what`` says what does not match (e.g. ``"checkpoint x.pt does not match LeNet300"``);
    expected keys ending in one of ``optional`` may be absent. Keys are checked before
    shapes: a state of another architecture is named by its keys."""
    missing = [k for k in expected if k not in found and not k.endswith(optional)]
    unexpected = [k for k in found if k not in expected]
    if missing or unexpected:
        parts = [f"{label} keys: {bounded_list(keys)}" for label, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        raise CheckpointError(f"{what}: " + "; ".join(parts))
    wrong = [f"{k} {tuple(found[k].shape)} vs model {tuple(v.shape)}" for k, v in expected.items()
             if k in found and tuple(found[k].shape) != tuple(v.shape)]
    if wrong:
        raise CheckpointError(f"{what}: shapes do not match: {bounded_list(wrong, 4)}")


def apply_checkpoint(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load ``state`` into ``model`` strictly, re-creating pruning masks it carries.

    Mismatched keys or shapes raise :class:`CheckpointError` listing them, and so
    does a tensor that holds no real dense values (meta, sparse, complex), before
    anything is loaded.
    """
    _check_dense_real(state)
    for key in state:
        if key.endswith("_mask") and f"{key[:-5]}_orig" in state:
            module_name, _, param = key[:-5].rpartition(".")
            try:
                module = model.get_submodule(module_name)
            except AttributeError:
                continue
            if isinstance(getattr(module, param, None), torch.Tensor) and not hasattr(module, f"{param}_orig"):
                prune.identity(module, param)
    check_state_matches(model.state_dict(), state, f"checkpoint does not match {type(model).__name__}", OPTIONAL_KEYS)
    model.load_state_dict(state, strict=False)
    return model


def _check_dense_real(state: Mapping[str, torch.Tensor]) -> None:
    """Refuse tensors ``load_state_dict`` would reject with a cut-off message or cast silently."""
    for key, tensor in state.items():
        if tensor.is_meta:
            raise CheckpointError(f"checkpoint tensor {key} is on the meta device: it holds a shape but no values")
        if tensor.layout != torch.strided:
            raise CheckpointError(f"checkpoint tensor {key} is {str(tensor.layout).removeprefix('torch.')}, "
                                  "not a dense tensor: save it with .to_dense()")
        if tensor.is_complex():
            raise CheckpointError(f"checkpoint tensor {key} is complex ({tensor.dtype}); weights must be real")


def save_checkpoint(state: Mapping[str, torch.Tensor], path: str | Path) -> Path:
    """Write a state dict atomically: safetensors for ``.safetensors``, else ``torch.save``."""
    path = Path(path)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))
    return atomic_torch_save(tensors, path)
