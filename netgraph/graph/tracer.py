"""Trace a model into a :class:`~netgraph.graph.channels.ChannelGraph`.

Two front-ends give an fx graph: ``torch.fx`` symbolic tracing (module-level nodes,
readable, honours leaf modules) and ``torch.export`` (ATen-level, captures what fx
cannot, such as Hugging Face ``transformers`` models; see :mod:`netgraph.graph.export`).
``frontend="auto"`` tries fx and falls back to ``torch.export`` when fx cannot trace.
Either graph is executed once on an example input (batch of one, eval mode),
carrying for every tensor both its real value (for shapes) and its index map
(which channel node each element came from, see :mod:`netgraph.graph.idmaps`). Op
handlers (:mod:`netgraph.graph.ops`) turn index maps of inputs into index maps of
outputs, creating node groups and blocks on the way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import fx, nn

from netgraph.errors import TraceError
from netgraph.graph import aten, ops  # noqa: F401 - aten registers the ATen handlers
from netgraph.graph.channels import AttentionHeads, Block, BlockKind, ChannelGraph, NodeGroup
from netgraph.graph.export import export_graph
from netgraph.graph.idmaps import ID_DTYPE, broadcast_channels, leaves, map_structure
from netgraph.graph.weights import WeightSource
from netgraph.modes import eval_mode
from netgraph.text import error_line, first_line


@dataclass
class GraphBuilder:
    """Accumulates node groups and blocks while the fx graph is interpreted."""

    groups: list[NodeGroup] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    heads: list[AttentionHeads] = field(default_factory=list)
    n_nodes: int = 0

    def new_group(self, name: str, size: int, kind: str) -> NodeGroup:
        group = NodeGroup(name=name, offset=self.n_nodes, size=size, kind=kind)  # type: ignore[arg-type]
        self.groups.append(group)
        self.n_nodes += size
        return group

    def add_block(
        self,
        name: str,
        kind: BlockKind,
        size: int,
        groups: int,
        in_per_group: int,
        in_chan: np.ndarray,
        in_node: np.ndarray,
        source: WeightSource,
        group_name: str | None = None,
    ) -> NodeGroup:
        """Create a group of ``size`` nodes fed by a new block; return the group."""
        group = self.new_group(group_name or name, size, kind)
        order = np.lexsort((in_node, in_chan))
        block = Block(
            name=name,
            kind=kind,
            dst=group,
            groups=groups,
            in_per_group=in_per_group,
            in_chan=np.asarray(in_chan, dtype=np.int64)[order],
            in_node=np.asarray(in_node, dtype=np.int64)[order],
            source=source,
        )
        self.blocks.append(block)
        return group


class _Tracer(fx.Tracer):
    """fx tracer that honours user leaves and remembers where tracing failed."""

    def __init__(self, leaf_modules: Sequence[type | str]) -> None:
        super().__init__()
        self.leaf_types = tuple(m for m in leaf_modules if isinstance(m, type))
        self.leaf_names = {m for m in leaf_modules if isinstance(m, str)}
        self.stack: list[str] = []
        self.failed_in: str | None = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, self.leaf_types) or module_qualified_name in self.leaf_names:
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m, forward, args, kwargs):  # type: ignore[no-untyped-def]
        self.stack.append(self.path_of_module(m) or type(m).__name__)
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:
                self.failed_in = f"{self.stack[-1]} ({type(m).__name__})"
            raise
        finally:
            self.stack.pop()


def symbolic_graph(model: nn.Module, leaf_modules: Sequence[type | str] = ()) -> tuple[fx.Graph, _Tracer]:
    """``torch.fx`` trace of ``model``; failures become one-line :class:`TraceError`."""
    tracer = _Tracer(leaf_modules)
    try:
        graph = tracer.trace(model)
    except Exception as error:
        where = f" inside {tracer.failed_in}" if tracer.failed_in else ""
        raise TraceError(
            f"torch.fx cannot trace {type(model).__name__}{where}: {error_line(error)} "
            f"(register that module as a leaf: leaf_modules=[...])"
        ) from None
    return graph, tracer


Frontend = Literal["auto", "fx", "export"]


def example_batch(model: nn.Module, input_shape: Sequence[int], input_dtype: torch.dtype | None = None) -> torch.Tensor:
    """A batch of one of ``input_shape`` on the model's device: standard normal floats
    (in the model's dtype unless ``input_dtype`` says otherwise), or, for an integer
    ``input_dtype``, token ids drawn below the first Embedding's ``num_embeddings``."""
    param = next((p for p in model.parameters() if p.is_floating_point()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = input_dtype or (param.dtype if param is not None else torch.float32)
    if dtype.is_floating_point:
        return torch.randn(1, *input_shape, device=device, dtype=dtype)
    table = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    if table is None:
        raise TraceError(f"input dtype {dtype} needs an Embedding to draw token ids for: the model has none")
    return torch.randint(0, table.num_embeddings, (1, *input_shape), device=device, dtype=dtype)


def _example_inputs(
    model: nn.Module, example_input: Any, input_shape: Sequence[int] | None, input_dtype: torch.dtype | None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` to run the model on: a tensor, a tuple (positional) or a dict
    (keyword arguments, ``input_ids=...``) as given, else a batch of one of ``input_shape``:
    standard normal floats, or for an integer ``input_dtype`` token ids drawn below the
    first Embedding's ``num_embeddings``."""
    if example_input is None:
        if input_shape is None:
            raise TraceError("give an example input or input_shape= (one sample's shape, e.g. 3,224,224)")
        example_input = example_batch(model, input_shape, input_dtype)
    if isinstance(example_input, dict):
        return (), dict(example_input)
    return (tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)), {}


def trace(
    model: nn.Module,
    example_input: Any = None,
    input_shape: Sequence[int] | None = None,
    leaf_modules: Sequence[type | str] = (),
    input_channel_dim: int | None = None,
    input_dtype: torch.dtype | None = None,
    frontend: Frontend = "auto",
) -> ChannelGraph:
    """Build the channel graph of ``model``: one node per channel, one block per layer.

    The model is run once on a batch of one, carrying an index map next to every
    tensor (which channel each element came from), in eval mode and without gradients;
    the model is left as it was.

    Parameters
    ----------
    model : nn.Module
        Any PyTorch model: torchvision, Hugging Face transformers, your own; on the
        meta device too (see :mod:`netgraph.connectivity.streaming`).
    example_input : Tensor, tuple or dict, optional
        A batch of one: a tensor, a tuple of them (positional arguments) or a dict
        (keyword arguments, e.g. ``input_ids`` and ``attention_mask``).
    input_shape : sequence of int, optional
        One sample's shape, instead of ``example_input``.
    leaf_modules : sequence of type or str
        Modules (types or qualified names, fx only) not entered: each becomes a black
        box connecting all of its input channels to all of its output channels.
    input_channel_dim : int, optional
        The channel dim of float inputs (default 1).
    input_dtype : torch.dtype, optional
        With ``input_shape``: an integer dtype draws token ids below the first
        Embedding's size (default: the model's float dtype).
    frontend : {"auto", "fx", "export"}
        ``torch.fx`` symbolic tracing, ``torch.export`` (Hugging Face models and
        anything fx cannot trace), or ``"auto"``: fx, then ``torch.export`` when fx
        fails and no leaf modules were asked for.

    Returns
    -------
    ChannelGraph

    Raises
    ------
    TraceError
        One line naming the node, the op or module and what to do.

    Examples
    --------
    >>> import netgraph as ng
    >>> graph = ng.trace(ng.build_model("lenet5"), input_shape=(1, 28, 28))
    >>> graph.n_nodes, len(graph.layers())
    (237, 5)
    """
    args, kwargs = _example_inputs(model, example_input, input_shape, input_dtype)
    builder = GraphBuilder()
    if frontend == "export" and leaf_modules:
        raise TraceError("leaf modules need the fx front-end (frontend='fx' or 'auto')")
    if frontend in ("fx", "auto"):
        try:
            graph, tracer = symbolic_graph(model, leaf_modules)
        except TraceError as fx_error:
            if frontend == "fx" or leaf_modules:
                raise
            try:
                return _trace_export(model, args, kwargs, builder, input_channel_dim)
            except TraceError as export_error:
                raise TraceError(f"{fx_error}; {export_error}") from None
        if frontend == "auto" and not leaf_modules and _opaque_modules(model, graph):
            try:  # torch.export sees inside torch.nn modules netgraph has no handler for
                return _trace_export(model, args, kwargs, builder, input_channel_dim)
            except TraceError:
                builder = GraphBuilder()  # fx then names the module to make a leaf
        bound = _bind_fx(graph, args, kwargs)
        with eval_mode(model), torch.no_grad():
            outputs, input_nodes = _interpret(model, graph, bound, {}, builder, tracer, input_channel_dim)
        return _channel_graph(model, builder, outputs, input_nodes)
    return _trace_export(model, args, kwargs, builder, input_channel_dim)


def _opaque_modules(model: nn.Module, graph: fx.Graph) -> bool:
    """Whether fx kept a module (a ``torch.nn`` built-in leaf) that no handler places."""
    return any(
        n.op == "call_module" and not any(k in ops.MODULE_HANDLERS for k in type(model.get_submodule(n.target)).__mro__)
        for n in graph.nodes
    )


def _trace_export(
    model: nn.Module, args: tuple, kwargs: dict, builder: GraphBuilder, channel_dim: int | None
) -> ChannelGraph:
    with eval_mode(model):
        exported = export_graph(model, args, kwargs)
        with torch.no_grad():
            outputs, input_nodes = _interpret(
                model, exported.graph, exported.user_inputs, exported.constants, builder, exported.context, channel_dim
            )
    return _channel_graph(model, builder, outputs, input_nodes)


def _bind_fx(graph: fx.Graph, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Placeholder name -> value: positional arguments in order, keyword ones by name."""
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    bound = {node.name: value for node, value in zip(placeholders, args)}
    for node in placeholders[len(args):]:
        if node.target in kwargs:
            bound[node.name] = kwargs[node.target]
        elif node.args:
            bound[node.name] = node.args[0]
        else:
            raise TraceError(f"the model takes more inputs than given (missing '{node.target}')")
    unknown = set(kwargs) - {str(n.target) for n in placeholders}
    if unknown:
        raise TraceError(f"the model takes no input named {', '.join(sorted(unknown))}")
    return bound


def _channel_graph(model: nn.Module, builder: GraphBuilder, outputs: Any, input_nodes: list[np.ndarray]) -> ChannelGraph:
    output_ids = [ids for ids in leaves(outputs) if isinstance(ids, torch.Tensor)]
    output_nodes = np.unique(torch.cat([i.reshape(-1) for i in output_ids]).numpy()) if output_ids else np.array([])
    output_nodes = output_nodes[output_nodes >= 0].astype(np.int64)
    if output_nodes.size == 0:
        raise TraceError(f"the output of {type(model).__name__} does not depend on its input")
    return ChannelGraph(
        model=model,
        groups=builder.groups,
        blocks=builder.blocks,
        input_nodes=np.concatenate(input_nodes) if input_nodes else np.array([], dtype=np.int64),
        output_nodes=output_nodes,
        heads=builder.heads,
    )


def _input_ids(value: Any, name: str, builder: GraphBuilder, channel_dim: int | None) -> Any:
    """Create the input group of one placeholder and return its index map."""
    if not isinstance(value, torch.Tensor):
        return None
    if not value.is_floating_point():
        group = builder.new_group(name, 1, "input")
        return torch.full(value.shape, group.offset, dtype=ID_DTYPE)
    dim = channel_dim if channel_dim is not None else (1 if value.dim() > 1 else 0)
    group = builder.new_group(name, value.shape[dim], "input")
    return broadcast_channels(group.nodes, value.shape, dim)


def _fetch_attr(model: nn.Module, target: str) -> Any:
    value: Any = model
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _interpret(model, graph, inputs, constants, builder, tracer, channel_dim):  # type: ignore[no-untyped-def]
    """Run the fx graph on real values and index maps side by side.

    ``inputs`` binds user-input placeholders by name; ``constants`` the placeholders
    that are parameters, buffers or constants (``torch.export``): they carry no channels."""
    values: dict[fx.Node, Any] = {}
    ids: dict[fx.Node, Any] = {}
    order = list(graph.nodes)
    last_use = {}
    for i, node in enumerate(order):
        for used in node.all_input_nodes:
            last_use[used] = i
    input_nodes: list[np.ndarray] = []
    tensors = sum(isinstance(v, torch.Tensor) for v in inputs.values())
    for i, node in enumerate(order):
        if node.op == "placeholder":
            if node.name in constants:
                values[node], ids[node] = constants[node.name], None
            else:
                value = inputs[node.name]
                values[node] = value
                before = builder.n_nodes
                ids[node] = _input_ids(value, str(node.target) if tensors > 1 else "input", builder, channel_dim)
                input_nodes.append(np.arange(before, builder.n_nodes))
        elif node.op == "get_attr":
            values[node] = _fetch_attr(model, node.target)
            ids[node] = None
        elif node.op == "output":
            return map_structure(lambda n: ids[n] if isinstance(n, fx.Node) else None, node.args[0]), input_nodes
        else:
            args = fx.node.map_arg(node.args, lambda n: values[n])
            kwargs = fx.node.map_arg(node.kwargs, lambda n: values[n])
            arg_ids = fx.node.map_arg(node.args, lambda n: ids[n])
            kwarg_ids = fx.node.map_arg(node.kwargs, lambda n: ids[n])
            module = model.get_submodule(node.target) if node.op == "call_module" else None
            try:
                value = _run(node, module, args, kwargs)
            except Exception as error:
                shapes = ", ".join(str(tuple(x.shape)) for x in inputs.values() if isinstance(x, torch.Tensor))
                message = error_line(error)
                raise TraceError(
                    f"running the model on input {shapes} failed at fx node '{node.name}' ({node.target}): "
                    f"{message} (check input_shape=)"
                ) from None
            values[node] = value
            call = ops.OpCall(node, module, args, kwargs, arg_ids, kwarg_ids, value, builder, tracer)
            try:
                ids[node] = ops.dispatch(call)
            except TraceError:
                raise
            except Exception as error:  # a handler met a case it does not cover: still one line
                message = first_line(error)
                raise call.fail(f"its handler failed ({type(error).__name__}: {message})") from None
        for used in node.all_input_nodes:
            if last_use.get(used) == i:
                values.pop(used, None)
                ids.pop(used, None)
    raise TraceError("the traced graph has no output")


def _run(node: fx.Node, module: nn.Module | None, args: tuple, kwargs: dict) -> Any:
    """Execute one fx node on real values."""
    if node.op == "call_module":
        return module(*args, **kwargs)  # type: ignore[misc]
    if node.op == "call_method":
        self_obj, *rest = args
        return getattr(self_obj, node.target)(*rest, **kwargs)  # type: ignore[arg-type]
    return node.target(*args, **kwargs)  # type: ignore[operator]

