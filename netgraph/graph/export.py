"""The ``torch.export`` front-end: an ATen-level fx graph for models ``torch.fx`` cannot trace.

``torch.fx`` symbolic tracing fails on Hugging Face ``transformers`` models (their
forward branches on config values, builds caches, checks shapes);
``torch.export.export(..., strict=False)`` runs the real Python code on fake tensors
and records the ATen ops, so it captures them. Its graph takes parameters, buffers
and constants as placeholders; the graph signature names the module attribute behind
each, which is how ATen handlers (:mod:`netgraph.graph.aten`) tie a block to the live
parameter. The model runs wrapped so that its outputs are a flat tuple of tensors:
non-tensor outputs (a ``transformers`` KV cache, ``None``) are dropped, so a model is
taken as it comes (``use_cache`` at its default).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn

from netgraph.errors import TraceError
from netgraph.text import error_line

_WRAPPED = "wrapped"


class _TensorOutputs(nn.Module):
    """Runs ``model`` and returns the tensors of its output, in order (caches dropped)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.wrapped = model

    def forward(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        return tuple(_tensor_leaves(self.wrapped(*args, **kwargs)))


def _tensor_leaves(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):  # transformers' ModelOutput is an OrderedDict
        return [t for v in value.values() for t in _tensor_leaves(v)]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensor_leaves(v)]
    return []  # caches, None, config objects: no channels


@dataclass
class ExportContext:
    """What ATen handlers need besides values: the model and the placeholders that are
    its parameters. Plays the role of the fx tracer in :class:`netgraph.graph.ops.OpCall`."""

    root: nn.Module
    #: placeholder name -> fully qualified parameter name in ``root``
    params: dict[str, str] = field(default_factory=dict)
    leaf_types: tuple[type, ...] = ()
    leaf_names: set[str] = field(default_factory=set)

    def node_name(self, node: fx.Node) -> str:
        """``module.path.node`` for an ATen node: the innermost module it ran in, then its name."""
        stack = list((node.meta.get("nn_module_stack") or {}).values())
        path = _strip(stack[-1][0]) if stack else ""
        path = "" if path == _WRAPPED else path
        return f"{path}.{node.name}" if path else node.name

    def parameter(self, arg: Any) -> tuple[str, nn.Module, str] | None:
        """``(module path, module, attribute)`` if ``arg`` is a parameter placeholder."""
        if not isinstance(arg, fx.Node) or arg.name not in self.params:
            return None
        owner, _, attr = self.params[arg.name].rpartition(".")
        return owner, self.root.get_submodule(owner), attr


@dataclass
class ExportedGraph:
    graph: fx.Graph
    context: ExportContext
    #: placeholder name -> value (parameters, buffers, constants), not user inputs
    constants: dict[str, Any]
    #: user-input placeholder name -> example value (args and kwargs, flattened)
    user_inputs: dict[str, Any]
    #: output node's user outputs (the tensors of the model's output)
    user_outputs: list[str]


def _strip(fqn: str) -> str:
    return fqn.removeprefix(f"{_WRAPPED}.")


def export_graph(model: nn.Module, args: tuple, kwargs: dict) -> ExportedGraph:
    """``torch.export`` ``model`` on example ``args``/``kwargs``; failures are one line."""
    wrapper = _TensorOutputs(model)
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # torch logs and prints failed guards and graphs: the error line says it all
    try:
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            program = torch.export.export(wrapper, args, kwargs, strict=False)
    except Exception as error:  # noqa: BLE001 - any capture failure becomes one TraceError line
        raise TraceError(f"torch.export cannot capture {type(model).__name__}: {export_failure(error)}") from None
    finally:
        logging.disable(previous)
    from torch.export.graph_signature import InputKind

    signature = program.graph_signature
    context = ExportContext(root=model)
    # a tied weight (GPT-2's lm_head and wte) gets one name: the model's first, as named_parameters gives
    canonical = {id(p): name for name, p in model.named_parameters()}
    constants: dict[str, Any] = {}
    flat, _ = program._get_flat_args_with_check(args, kwargs)
    names = [spec.arg.name for spec in signature.input_specs if spec.kind == InputKind.USER_INPUT]
    user_inputs = dict(zip(names, flat, strict=True))
    for spec in signature.input_specs:
        name = spec.arg.name
        if spec.kind == InputKind.USER_INPUT:
            continue
        elif spec.kind == InputKind.PARAMETER:
            param = model.get_parameter(_strip(spec.target))
            context.params[name] = canonical[id(param)]
            constants[name] = param
        elif spec.kind == InputKind.BUFFER:
            constants[name] = model.get_buffer(_strip(spec.target))
        elif spec.kind in (InputKind.CONSTANT_TENSOR, InputKind.CUSTOM_OBJ):
            constants[name] = program.constants[spec.target]
        else:
            constants[name] = None
    user_outputs = [getattr(s.arg, "name", None) for s in signature.output_specs if s.kind.name == "USER_OUTPUT"]
    return ExportedGraph(program.graph_module.graph, context, constants, user_inputs, user_outputs)


_BRANCH = re.compile(r"Could not guard on data-dependent expression ([^\n]+?)(?: \(unhinted|\n|$)")
_WHERE = re.compile(r'File "([^"]+)", line (\d+), in (\w+)\n\s+(.+)')
_CALL = re.compile(r"torch\.ops\.(\w+\.[\w.]+)\(")


def export_failure(error: BaseException) -> str:
    """One line naming why ``torch.export`` failed: for a data-dependent branch, the
    expression it could not decide and the user code line that branches on it."""
    text = str(error)
    branch = _BRANCH.search(text)
    if branch is None:
        return error_line(error)
    user_frames = [m for m in _WHERE.finditer(text) if "/torch/" not in m.group(1)]
    ops = _CALL.findall(text)
    op = ops[-1] if ops else "aten.item"
    parts = [f"data-dependent branch on {branch.group(1).strip()} (a tensor value read as a Python scalar by {op})"]
    if user_frames:
        frame = user_frames[-1]
        parts.append(f"at {frame.group(1).rpartition('/')[2]}:{frame.group(2)} in {frame.group(3)}: {frame.group(4).strip()}")
    return "; ".join(parts)
