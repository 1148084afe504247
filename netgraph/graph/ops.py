"""Op handlers: how each fx node moves channels, one registry for all of them.

A handler receives an :class:`OpCall` (real values and index maps of the
node's inputs, its real output) and returns the index map(s) of the output,
adding node groups and blocks to the graph when the op creates channels.
Most ops need no rule of their own; they fall in a few families:

* ``movement`` (view, permute, cat, chunk, getitem, shuffles): re-run the op on
  the index maps themselves;
* ``channel_local`` (pooling, padding, interpolation, means): run the op on a
  float probe ``ids + 1`` and on ones; their ratio recovers the ids when the
  op never mixes channels, and anything else is reported as mixing;
* ``alias`` (activations, dropout, casts): output channels are input channels;
* ``elementwise`` (add, mul, ...): two different channels meeting make a join node.

Register new ones with :func:`register_module`, :func:`register_function` or
:func:`register_method`.
"""

from __future__ import annotations

import functools
import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from netgraph.errors import TraceError
from netgraph.graph.idmaps import (
    ID_DTYPE,
    NO_NODE,
    broadcast_channels,
    channel_pairs,
    channel_vector,
    leaves,
)
from netgraph.graph.weights import DenseWeight, DiagonalWeight, EmbeddingWeight, Ones

Handler = Callable[["OpCall"], Any]
MODULE_HANDLERS: dict[type, Handler] = {}
FUNCTION_HANDLERS: dict[Any, Handler] = {}
METHOD_HANDLERS: dict[str, Handler] = {}


@dataclass
class OpCall:
    """One fx node being placed in the channel graph."""

    node: fx.Node
    module: nn.Module | None
    args: tuple
    kwargs: dict
    arg_ids: tuple
    kwarg_ids: dict
    value: Any
    builder: Any
    tracer: Any

    @property
    def name(self) -> str:
        if self.node.op == "call_module":
            return str(self.node.target)
        scoped = getattr(self.tracer, "node_name", None)  # torch.export: prefixed by the module path
        return scoped(self.node) if scoped else self.node.name

    def tracked(self) -> list[torch.Tensor]:
        """Index maps of every input that carries channels."""
        return [i for i in leaves((self.arg_ids, self.kwarg_ids)) if isinstance(i, torch.Tensor)]

    def data_ids(self) -> torch.Tensor:
        ids = self.arg_ids[0] if self.arg_ids else None
        if not isinstance(ids, torch.Tensor):
            raise self.fail("its first argument carries no channels")
        return ids

    def rerun(self, args: tuple, kwargs: dict) -> Any:
        node = self.node
        if node.op == "call_module":
            return self.module(*args, **kwargs)  # type: ignore[misc]
        if node.op == "call_method":
            return getattr(args[0], node.target)(*args[1:], **kwargs)  # type: ignore[arg-type]
        return node.target(*args, **kwargs)  # type: ignore[operator]

    def describe(self) -> str:
        target = self.node.target
        if self.module is not None:
            kind = f"module {type(self.module).__name__}"
        elif callable(target):
            kind = f"function {getattr(target, '__module__', '')}.{getattr(target, '__name__', target)}"
        else:
            kind = f"method .{target}()"
        return f"fx node '{self.node.name}' ({self.node.op} {kind})"

    def enclosing_module(self) -> str | None:
        """``'name' (Type)`` of the module to make a leaf: the node's own module, else
        the innermost module whose forward the node was traced in (None at top level)."""
        if self.module is not None:
            return f"'{self.name}' ({type(self.module).__name__})"
        stack = list((self.node.meta.get("nn_module_stack") or {}).values())
        if not stack:
            return None
        path, klass = stack[-1]
        return f"'{path}' ({getattr(klass, '__name__', str(klass).rpartition('.')[2])})"

    def fail(self, why: str) -> TraceError:
        where = self.enclosing_module()
        leaf = f"make its module {where} a leaf" if where else "make the enclosing module a leaf"
        return TraceError(
            f"cannot place {self.describe()} in the channel graph: {why}; register a handler "
            f"(netgraph.graph.ops.register_module/register_function/register_method) or {leaf} "
            f"(leaf_modules=[...])"
        )


def dispatch(call: OpCall) -> Any:
    """Index maps of the node's output (``None`` where it carries no channels)."""
    if not any(isinstance(v, torch.Tensor) for v in leaves(call.value)) or not call.tracked():
        return None
    handler = _find_handler(call)
    if handler is None:
        user_leaf = call.module is not None and (
            isinstance(call.module, call.tracer.leaf_types) or call.name in call.tracer.leaf_names
        )
        if user_leaf:
            return dense_leaf(call)
        raise call.fail("no handler for this op")
    return handler(call)


def _find_handler(call: OpCall) -> Handler | None:
    if call.node.op == "call_module":
        for klass in type(call.module).__mro__:
            if klass in MODULE_HANDLERS:
                return MODULE_HANDLERS[klass]
        return None
    if call.node.op == "call_method":
        return METHOD_HANDLERS.get(str(call.node.target))
    if call.node.target not in FUNCTION_HANDLERS and sys.modules.get("torchvision") is not None:
        _register_torchvision_functions()  # a model calling them has imported torchvision
    return FUNCTION_HANDLERS.get(call.node.target)


@functools.cache
def _register_torchvision_functions() -> None:
    """File torchvision's functional ops on first need, not at import: importing
    torchvision loads ``torch._dynamo`` (~3 s), which every command and every
    ``compare`` worker would pay for models that never call them."""
    from torchvision.models.swin_transformer import _patch_merging_pad
    from torchvision.ops import stochastic_depth

    register_function(stochastic_depth)(alias)
    register_function(_patch_merging_pad)(padded_movement)


def _registrar(table: dict[Any, Handler], keys: tuple[Any, ...]) -> Callable[[Handler], Handler]:
    """A decorator that files its handler under every key of ``keys`` in ``table``."""

    def deco(handler: Handler) -> Handler:
        for key in keys:
            table[key] = handler
        return handler

    return deco


def register_module(*types: type) -> Callable[[Handler], Handler]:
    """Decorator: handle leaf modules of these types (subclasses included)."""
    return _registrar(MODULE_HANDLERS, types)


def register_function(*functions: Any) -> Callable[[Handler], Handler]:
    """Decorator: handle ``call_function`` nodes with these targets."""
    return _registrar(FUNCTION_HANDLERS, functions)


def register_method(*names: str) -> Callable[[Handler], Handler]:
    """Decorator: handle ``call_method`` nodes with these method names."""
    return _registrar(METHOD_HANDLERS, names)


# ---------------------------------------------------------------- generic families


def alias(call: OpCall) -> Any:
    """Output channels are the input channels (activations, dropout, casts, norms without scale)."""
    ids = call.tracked()[0]
    value = call.value
    if isinstance(value, torch.Tensor):
        try:
            return torch.broadcast_to(ids, value.shape)
        except RuntimeError:
            raise call.fail(f"an elementwise op changed shape {tuple(ids.shape)} -> {tuple(value.shape)}") from None
    return ids


def _substitute(value: Any, ids: Any) -> Any:
    """Swap real tensors for index maps: tracked ones for their ids, float
    constants for ``-1`` (no channel), integer tensors (indices) kept."""
    if isinstance(value, (tuple, list)):
        return type(value)(_substitute(v, i) for v, i in zip(value, ids))
    if isinstance(value, dict):
        return {k: _substitute(v, ids[k]) for k, v in value.items()}
    if isinstance(ids, torch.Tensor):
        return ids.contiguous()
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex():
            return torch.full(value.shape, NO_NODE, dtype=ID_DTYPE)
        return value.cpu()
    return value


def movement(call: OpCall) -> Any:
    """Re-run a data-movement op on index maps."""
    args = _substitute(call.args, call.arg_ids)
    kwargs = _substitute(call.kwargs, call.kwarg_ids)
    try:
        result = call.rerun(args, kwargs)
    except Exception as error:  # noqa: BLE001 - any failure means the op is not pure data movement
        raise call.fail(f"it does not run on index maps ({type(error).__name__})") from None
    for got, want in zip(leaves(result), leaves(call.value)):
        if isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor) and got.shape != want.shape:
            raise call.fail("it gives a different shape on index maps")
    return result


def padded_movement(call: OpCall) -> torch.Tensor:
    """Data movement of one tensor that may zero-pad: moving ``ids + 1`` makes padding read as no node."""
    try:
        result = call.rerun((call.data_ids() + 1, *call.args[1:]), call.kwargs)
    except Exception as error:  # noqa: BLE001
        raise call.fail(f"it does not run on index maps ({type(error).__name__})") from None
    if not isinstance(result, torch.Tensor) or result.shape != call.value.shape:
        raise call.fail("it gives a different shape on index maps")
    return result - 1


def _first_tensor(value: Any) -> torch.Tensor:
    return next(v for v in leaves(value) if isinstance(v, torch.Tensor))


def spatial(call: OpCall) -> Any:
    """Pooling, padding, interpolation: ops on the dims after the channel dim (1).

    A map that is constant per channel stays so; anything else is probed."""
    vector = channel_vector(call.data_ids(), 1) if call.data_ids().dim() > 2 else None
    value = _first_tensor(call.value)
    if vector is None or value.dim() != call.data_ids().dim() or value.shape[1] != vector.numel():
        return channel_local(call)
    result = broadcast_channels(vector, value.shape, 1)
    return result if isinstance(call.value, torch.Tensor) else (result, *[None] * (len(call.value) - 1))


def channel_local(call: OpCall) -> Any:
    """Ops that never mix channels: ``f(p * (ids + 1)) / f(p)``, with ``p`` marking the
    elements that carry a node, is ``ids + 1`` wherever every element ``f`` combines
    carries the same node. Two more probes catch the rest: squared ids (an average of
    different ids is off the square of its mean) and reversed ids (a max picks
    another element). Anything else is reported as mixing."""
    ids = call.data_ids()
    present = (ids >= 0).to(torch.float64)
    codes = present * (ids + 1)
    top = float(codes.max()) + 1 if codes.numel() else 1.0

    def run(x: torch.Tensor) -> torch.Tensor:
        return _first_tensor(call.rerun((x, *call.args[1:]), call.kwargs)).to(torch.float64)

    try:
        weight = run(present)
        filled = weight > 0
        safe = weight.where(filled, torch.ones_like(weight))
        linear, square, reverse = (
            torch.where(filled, run(probe) / safe, 0.0) for probe in (codes, codes.square(), present * (top - codes))
        )
    except Exception as error:  # noqa: BLE001
        raise call.fail(f"it cannot be probed ({type(error).__name__}: {error})") from None
    rounded = linear.round()
    exact = (
        ((linear - rounded).abs() <= 1e-6 * rounded.clamp_min(1)).all()
        and ((square - rounded.square()).abs() <= 1e-9 * rounded.square().clamp_min(1)).all()
        and ((reverse - torch.where(filled, top - rounded, 0.0)).abs() <= 1e-6 * top).all()
    )
    known = torch.isin(rounded[rounded > 0].to(ID_DTYPE), ids.unique() + 1).all()
    if not (bool(exact) and bool(known)):
        raise call.fail("it mixes channels (elements of different nodes meet in one output)")
    result = rounded.to(ID_DTYPE) - 1
    return result if isinstance(call.value, torch.Tensor) else (result, *[None] * (len(call.value) - 1))


def constant(call: OpCall) -> torch.Tensor:
    """Ops whose output does not depend on the input's values (``zeros_like``...): no channels."""
    return torch.full(call.value.shape, NO_NODE, dtype=ID_DTYPE)


def _join_flat(a: torch.Tensor, b: torch.Tensor, call: OpCall) -> torch.Tensor:
    """Elementwise meeting of two index vectors; distinct pairs become join nodes."""
    out = torch.where(a < 0, b, a)
    need = (a >= 0) & (b >= 0) & (a != b)
    if not bool(need.any()):
        return out
    n = call.builder.n_nodes
    pairs, inverse = torch.unique(a[need] * n + b[need], return_inverse=True)
    sources = torch.stack([pairs // n, pairs % n], 1).reshape(-1).numpy()
    size = pairs.numel()
    group = call.builder.add_block(
        call.name, "struct", size, groups=size, in_per_group=2,
        in_chan=np.arange(2 * size), in_node=sources, source=Ones(size, 2),
    )
    out[need] = group.offset + inverse
    return out


def join(a: torch.Tensor, b: torch.Tensor, call: OpCall) -> torch.Tensor:
    """Index map of ``a (op) b`` for same-shape maps; per-channel when both are channel-constant."""
    if a.dim() >= 2:
        for dim in (1, -1):
            va, vb = channel_vector(a, dim), channel_vector(b, dim)
            if va is not None and vb is not None:
                return broadcast_channels(_join_flat(va, vb, call), a.shape, dim)
    if a.dim() == 0:
        return _join_flat(a.reshape(-1), b.reshape(-1), call).reshape(a.shape)
    # Join each distinct pair of rows once (a ViT's tokens share a handful of rows).
    width = a.shape[-1]
    rows, inverse = torch.unique(torch.cat([a.reshape(-1, width), b.reshape(-1, width)], 1), dim=0, return_inverse=True)
    joined = _join_flat(rows[:, :width].reshape(-1), rows[:, width:].reshape(-1), call).reshape(-1, width)
    return joined[inverse].reshape(a.shape)


def elementwise(call: OpCall) -> Any:
    """Binary (or n-ary) elementwise ops: add, mul, where, maximum..."""
    if not isinstance(call.value, torch.Tensor):
        return alias(call)
    shape = call.value.shape
    maps = [torch.broadcast_to(i, shape) for i in call.tracked()]
    result = maps[0]
    for other in maps[1:]:
        result = join(result, other, call)
    return result


def dense_leaf(call: OpCall) -> Any:
    """A black-box leaf: every input channel feeds every output channel (weights 1)."""
    sources = np.unique(torch.cat([i.reshape(-1) for i in call.tracked()]).numpy())
    sources = sources[sources >= 0]
    # Channels-last leaves (attention over (B, ..., C) tokens) keep their channels last.
    first = call.tracked()[0]
    last = first.dim() > 2 and channel_vector(first, 1) is None and channel_vector(first, -1) is not None

    def out(value: Any) -> Any:
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            return None
        dim = (-1 if last and value.dim() == first.dim() else 1) if value.dim() > 1 else 0
        size = value.shape[dim]
        group = call.builder.add_block(
            call.name, "struct", size, groups=1, in_per_group=len(sources),
            in_chan=np.arange(len(sources)), in_node=sources, source=Ones(size, len(sources)),
        )
        return broadcast_channels(group.nodes, value.shape, dim)

    from netgraph.graph.idmaps import map_structure

    return map_structure(out, call.value)


# ---------------------------------------------------------------- parametric blocks


@register_module(nn.Linear)
def linear(call: OpCall) -> torch.Tensor:
    m = call.module
    in_chan, in_node = channel_pairs(call.data_ids(), -1)
    group = call.builder.add_block(
        call.name, "param", m.out_features, 1, m.in_features, in_chan, in_node, DenseWeight(m)
    )
    return broadcast_channels(group.nodes, call.value.shape, -1)


@register_function(F.linear)
def functional_linear(call: OpCall) -> torch.Tensor:
    """``F.linear(x, self.weight, self.bias)`` inside a traced custom module."""
    weight_node = call.node.args[1] if len(call.node.args) > 1 else call.node.kwargs.get("weight")
    if not (isinstance(weight_node, fx.Node) and weight_node.op == "get_attr"):
        raise call.fail("its weight is not a module parameter")
    owner, _, param = str(weight_node.target).rpartition(".")
    module = call.tracer.root.get_submodule(owner)
    weight = getattr(module, param)
    in_chan, in_node = channel_pairs(call.data_ids(), -1)
    bias_node = call.node.args[2] if len(call.node.args) > 2 else call.node.kwargs.get("bias")
    bias_name = str(bias_node.target).rpartition(".")[2] if isinstance(bias_node, fx.Node) else None
    group = call.builder.add_block(
        owner, "param", weight.shape[0], 1, weight.shape[1], in_chan, in_node,
        DenseWeight(module, param_name=param, bias_name=bias_name),
    )
    return broadcast_channels(group.nodes, call.value.shape, -1)


@register_module(nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
def conv(call: OpCall) -> torch.Tensor:
    m = call.module
    in_chan, in_node = channel_pairs(call.data_ids(), 1)
    transposed = isinstance(m, nn.modules.conv._ConvTransposeNd)
    group = call.builder.add_block(
        call.name, "param", m.out_channels, m.groups, m.in_channels // m.groups, in_chan, in_node,
        DenseWeight(m, groups=m.groups, transposed=transposed),
    )
    return broadcast_channels(group.nodes, call.value.shape, 1)


@register_module(nn.Embedding)
def embedding(call: OpCall) -> torch.Tensor:
    m = call.module
    tokens = call.data_ids().unique()
    tokens = tokens[tokens >= 0].numpy()
    group = call.builder.add_block(
        call.name, "param", m.embedding_dim, 1, 1, np.zeros(len(tokens), dtype=np.int64), tokens,
        EmbeddingWeight(m),
    )
    return broadcast_channels(group.nodes, call.value.shape, -1)


@register_module(nn.MultiheadAttention)
def attention(call: OpCall) -> tuple[torch.Tensor, None]:
    """q/k/v projections -> one score node per head (q and k of that head meet) ->
    each output channel fed by its v channel and its head's score -> out_proj."""
    m = call.module
    if not m._qkv_same_embed_dim:
        raise call.fail("separate q/k/v projection weights are not supported")
    names = ("query", "key", "value")
    inputs = [call.arg_ids[i] if i < len(call.arg_ids) else call.kwarg_ids.get(n) for i, n in enumerate(names)]
    if not all(isinstance(i, torch.Tensor) for i in inputs):
        raise call.fail("query, key and value must all carry channels")
    embed, heads = m.embed_dim, m.num_heads
    head_dim = embed // heads
    qkv = []
    for index, (ids, part) in enumerate(zip(inputs, "qkv")):
        in_chan, in_node = channel_pairs(ids, -1)
        rows = slice(index * embed, (index + 1) * embed)
        source = DenseWeight(m, param_name="in_proj_weight", rows=rows, bias_name="in_proj_bias")
        qkv.append(call.builder.add_block(
            call.name, "param", embed, 1, embed, in_chan, in_node, source, group_name=f"{call.name}.{part}"
        ))
    q, k, v = (g.nodes.reshape(heads, head_dim) for g in qkv)
    scores = call.builder.add_block(
        f"{call.name}.scores", "struct", heads, heads, 2 * head_dim,
        np.arange(2 * embed), np.concatenate([q, k], 1).ravel(), Ones(heads, 2 * head_dim),
    )
    head_of_channel = np.repeat(scores.nodes, head_dim)
    mixed = call.builder.add_block(
        f"{call.name}.mix", "struct", embed, embed, 2,
        np.arange(2 * embed), np.stack([v.ravel(), head_of_channel], 1).ravel(), Ones(embed, 2),
    )
    out = call.builder.add_block(
        f"{call.name}.out_proj", "param", embed, 1, embed, np.arange(embed), mixed.nodes, DenseWeight(m.out_proj)
    )
    return broadcast_channels(out.nodes, call.value[0].shape, -1), None


def _diagonal(call: OpCall, dim: int) -> torch.Tensor:
    m = call.module
    has_scale = getattr(m, "weight", None) is not None or getattr(m, "running_var", None) is not None
    if not has_scale:
        return alias(call)
    ids = call.data_ids()
    channels = ids.shape[dim]
    in_chan, in_node = channel_pairs(ids, dim)
    group = call.builder.add_block(
        call.name, "diag", channels, channels, 1, in_chan, in_node, DiagonalWeight(m, channels)
    )
    return broadcast_channels(group.nodes, call.value.shape, dim)


@register_module(nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
def channel_norm(call: OpCall) -> torch.Tensor:
    return _diagonal(call, 1)


@register_module(nn.LayerNorm)
def layer_norm(call: OpCall) -> torch.Tensor:
    if len(call.module.normalized_shape) != 1:
        return alias(call)
    return _diagonal(call, -1)


# ---------------------------------------------------------------- registrations

register_module(
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign,
    nn.Threshold, nn.Softmax, nn.LogSoftmax, nn.Softmax2d, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
    nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout, nn.Identity, nn.LocalResponseNorm,
)(alias)
register_module(nn.Flatten, nn.Unflatten, nn.PixelShuffle, nn.PixelUnshuffle, nn.ChannelShuffle)(movement)
register_module(
    nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._LPPoolNd, nn.Upsample,
    nn.modules.padding._ConstantPadNd, nn.modules.padding._ReflectionPadNd,
    nn.modules.padding._ReplicationPadNd, nn.modules.padding._CircularPadNd,
)(spatial)

_ALIAS_FUNCTIONS = [
    F.relu, F.relu_, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu, F.silu, F.mish, F.hardswish,
    F.hardsigmoid, F.hardtanh, F.softplus, F.softsign, F.sigmoid, F.tanh, F.softmax, F.log_softmax,
    F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
    F.layer_norm, F.batch_norm, F.group_norm, F.instance_norm, F.normalize, F.threshold,
    torch.relu, torch.relu_, torch.sigmoid, torch.tanh, torch.softmax, torch.log_softmax, torch.abs,
    torch.neg, torch.exp, torch.log, torch.sqrt, torch.rsqrt, torch.square, torch.clamp, torch.clip,
    torch.sign, torch.erf, torch.sin, torch.cos, torch.dropout, operator.neg, operator.pos,
]
register_function(*_ALIAS_FUNCTIONS)(alias)
register_method(
    "contiguous", "clone", "detach", "to", "float", "double", "half", "bfloat16", "type", "type_as",
    "cpu", "cuda", "relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "softmax", "log_softmax",
    "abs", "neg", "exp", "log", "sqrt", "rsqrt", "square", "clamp", "clamp_", "clamp_min", "clip", "sign",
    "requires_grad_",
)(alias)

register_function(
    torch.flatten, torch.reshape, torch.permute, torch.transpose, torch.swapaxes, torch.swapdims,
    torch.movedim, torch.cat, torch.concat, torch.concatenate, torch.stack, torch.chunk, torch.split,
    torch.tensor_split, torch.squeeze, torch.unsqueeze, torch.narrow, torch.roll, torch.flip, torch.t,
    torch.unbind, torch.select, torch.index_select, torch.broadcast_to, torch.tile,
    torch.repeat_interleave, torch.channel_shuffle, torch.native_channel_shuffle, F.pixel_shuffle,
    F.pixel_unshuffle, operator.getitem,
)(movement)
register_method(
    "view", "reshape", "permute", "transpose", "flatten", "unflatten", "squeeze", "unsqueeze", "expand",
    "expand_as", "repeat", "chunk", "split", "tensor_split", "narrow", "t", "view_as", "reshape_as",
    "flip", "roll", "unbind", "movedim", "swapaxes", "select", "index_select", "repeat_interleave",
    "tile", "__getitem__",
)(movement)

register_function(
    F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
    F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
    F.adaptive_max_pool2d, F.adaptive_max_pool3d, F.lp_pool1d, F.lp_pool2d, F.interpolate, F.upsample,
    F.pad, torch.max_pool2d, torch.avg_pool1d, torch.adaptive_avg_pool1d,
)(spatial)
register_function(torch.zeros_like, torch.ones_like, torch.full_like, torch.empty_like, torch.rand_like,
                  torch.randn_like)(constant)
register_method("new_zeros", "new_ones", "new_full", "new_empty")(constant)
register_function(operator.gt, operator.ge, operator.lt, operator.le, operator.eq, operator.ne, torch.gt,
                  torch.ge, torch.lt, torch.le, torch.eq, torch.ne, torch.isnan, torch.isfinite)(alias)
register_method("gt", "ge", "lt", "le", "eq", "ne", "__gt__", "__ge__", "__lt__", "__le__", "bool")(alias)
register_function(torch.mean, torch.sum, torch.amax, torch.amin)(channel_local)
register_method("mean", "sum", "amax", "amin")(channel_local)

register_function(
    operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.isub,
    operator.imul, operator.itruediv, torch.add, torch.sub, torch.subtract, torch.mul, torch.multiply,
    torch.div, torch.divide, torch.true_divide, torch.maximum, torch.minimum, torch.where, torch.pow,
    operator.pow, torch.addcmul,
)(elementwise)
register_method(
    "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "maximum", "minimum", "pow",
    "__add__", "__radd__", "__mul__", "__rmul__", "__sub__", "__rsub__", "__truediv__",
)(elementwise)
