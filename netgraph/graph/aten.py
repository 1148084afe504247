"""ATen handlers: the ops of a ``torch.export`` graph, in the same registry as the fx ones.

Most ATen ops fall in the families of :mod:`netgraph.graph.ops` (movement, alias,
elementwise, channel-local). The rest read parameters: in an exported graph a
weight is a placeholder, and :class:`~netgraph.graph.export.ExportContext` says
which module attribute it is, so a block keeps a live reference like the fx one.
Attention is placed from ``scaled_dot_product_attention`` (one score node per
query head where its q and k channels meet, one mixed channel per value channel and
head, recorded as :class:`~netgraph.graph.channels.AttentionHeads`); a product of two
activations (eager ``QK^T``, ``softmax(.)V``) is a join of the row and column channels
that meet in each output element.
"""

from __future__ import annotations

import numpy as np
import torch

from netgraph.errors import TraceError
from netgraph.graph.channels import AttentionHeads, NodeGroup
from netgraph.graph.idmaps import broadcast_channels, channel_pairs
from netgraph.graph.ops import (
    OpCall,
    alias,
    channel_local,
    constant,
    elementwise,
    movement,
    register_function,
    spatial,
)
from netgraph.graph.weights import DenseWeight, DiagonalWeight, EmbeddingWeight, Ones

aten = torch.ops.aten


def _param(call: OpCall, index: int):  # type: ignore[no-untyped-def]
    """``(module path, module, attribute)`` of argument ``index`` if it is a parameter."""
    args = call.node.args
    if index >= len(args):
        return None
    return call.tracer.parameter(args[index])


def _tracked(ids: object) -> bool:
    return isinstance(ids, torch.Tensor)


def set_join(call: OpCall, name: str, sets: list[np.ndarray]) -> NodeGroup:
    """A group of ``len(sets)`` nodes, node ``i`` fed (weight 1) by every node of ``sets[i]``."""
    width = max((len(s) for s in sets), default=0)
    in_chan = np.concatenate([i * width + np.arange(len(s)) for i, s in enumerate(sets)]) if sets else np.array([])
    in_node = np.concatenate(sets) if sets else np.array([])
    return call.builder.add_block(
        name, "struct", len(sets), groups=len(sets), in_per_group=width,
        in_chan=in_chan, in_node=in_node, source=Ones(len(sets), width),
    )


def _row_sets(rows: torch.Tensor) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Distinct node sets of the rows of a 2-D index map: ``(row -> set index, sets)``."""
    ordered = rows.sort(dim=1).values
    distinct, inverse = torch.unique(ordered, dim=0, return_inverse=True)
    sets = [np.unique(r[r >= 0].numpy()) for r in distinct]
    return inverse, sets


# ---------------------------------------------------------------- parametric


@register_function(aten.linear.default)
def linear(call: OpCall) -> torch.Tensor:
    found = _param(call, 1)
    if found is None:
        raise call.fail("its weight is not a module parameter")
    path, module, attr = found
    bias = _param(call, 2)
    weight = getattr(module, attr)
    in_chan, in_node = channel_pairs(call.data_ids(), -1)
    group = call.builder.add_block(
        path, "param", weight.shape[0], 1, weight.shape[1], in_chan, in_node,
        DenseWeight(module, param_name=attr, bias_name=bias[2] if bias else None),
    )
    return broadcast_channels(group.nodes, call.value.shape, -1)


def _transposed_linear(call: OpCall, x_ids: torch.Tensor, found, bias) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """``x @ W`` with ``W`` stored ``(in, out)`` (transformers' Conv1D, explicit matmuls)."""
    path, module, attr = found
    weight = getattr(module, attr)
    in_chan, in_node = channel_pairs(x_ids, -1)
    group = call.builder.add_block(
        path, "param", weight.shape[1], 1, weight.shape[0], in_chan, in_node,
        DenseWeight(module, param_name=attr, transposed=True, bias_name=bias[2] if bias else None),
    )
    return broadcast_channels(group.nodes, call.value.shape, -1)


@register_function(aten.addmm.default)
def addmm(call: OpCall) -> torch.Tensor:
    found = _param(call, 2)
    if found is None or not _tracked(call.arg_ids[1]):
        return product_or_fail(call, call.arg_ids[1], call.arg_ids[2])
    return _transposed_linear(call, call.arg_ids[1], found, _param(call, 0))


@register_function(aten.mm.default, aten.matmul.default, aten.bmm.default)
def matmul(call: OpCall) -> torch.Tensor:
    found = _param(call, 1)
    if found is not None and _tracked(call.arg_ids[0]):
        return _transposed_linear(call, call.arg_ids[0], found, None)
    return product_or_fail(call, call.arg_ids[0], call.arg_ids[1])


def product_or_fail(call: OpCall, a: object, b: object) -> torch.Tensor:
    """``a @ b`` of two activations: output ``(i, j)`` joins row ``i`` of ``a`` with column ``j`` of ``b``."""
    if not (_tracked(a) and _tracked(b)):
        raise call.fail("a matrix product with a tensor that is neither an activation nor a parameter")
    shape = call.value.shape
    k = a.shape[-1]
    a = torch.broadcast_to(a, (*shape[:-1], k)).reshape(-1, shape[-2], k)  # type: ignore[union-attr]
    b = torch.broadcast_to(b.transpose(-1, -2), (*shape[:-2], shape[-1], k)).reshape(-1, shape[-1], k)  # type: ignore[union-attr]
    row_of, row_sets = _row_sets(a.reshape(-1, k))
    col_of, col_sets = _row_sets(b.reshape(-1, k))
    rows = row_of.reshape(a.shape[0], -1, 1).expand(-1, -1, shape[-1])
    cols = col_of.reshape(b.shape[0], 1, -1).expand(-1, shape[-2], -1)
    pairs, inverse = torch.unique(rows * len(col_sets) + cols, return_inverse=True)
    sets = [np.union1d(row_sets[int(p) // len(col_sets)], col_sets[int(p) % len(col_sets)]) for p in pairs]
    group = set_join(call, call.name, sets)
    return (group.offset + inverse).reshape(shape)


@register_function(aten.embedding.default)
def embedding(call: OpCall) -> torch.Tensor:
    found = _param(call, 0)
    ids = call.arg_ids[1]
    if found is None or not _tracked(ids):
        raise call.fail("its table is not a module parameter or its indices carry no input")
    path, module, attr = found
    weight = getattr(module, attr)
    tokens = ids.unique()
    tokens = tokens[tokens >= 0].numpy()
    group = call.builder.add_block(
        path, "param", weight.shape[1], 1, 1, np.zeros(len(tokens), dtype=np.int64), tokens,
        EmbeddingWeight(module, param_name=attr),
    )
    return broadcast_channels(group.nodes, call.value.shape, -1)


@register_function(aten.conv1d.default, aten.conv2d.default, aten.conv3d.default, aten.convolution.default)
def conv(call: OpCall) -> torch.Tensor:
    found = _param(call, 1)
    if found is None:
        raise call.fail("its weight is not a module parameter")
    path, module, attr = found
    args = call.args
    transposed = call.node.target is aten.convolution.default and bool(args[6])
    groups = int(args[8] if call.node.target is aten.convolution.default else (args[6] if len(args) > 6 else 1))
    weight = getattr(module, attr)
    out_channels = call.value.shape[1]
    in_channels = weight.shape[0] if transposed else weight.shape[1] * groups
    bias = _param(call, 2)
    in_chan, in_node = channel_pairs(call.data_ids(), 1)
    group = call.builder.add_block(
        path, "param", out_channels, groups, in_channels // groups, in_chan, in_node,
        DenseWeight(module, param_name=attr, groups=groups, transposed=transposed, bias_name=bias[2] if bias else None),
    )
    return broadcast_channels(group.nodes, call.value.shape, 1)


def _diagonal(call: OpCall, weight_index: int, dim: int) -> torch.Tensor:
    found = _param(call, weight_index)
    value = call.value[0] if isinstance(call.value, tuple) else call.value
    if found is None:
        ids = torch.broadcast_to(call.data_ids(), value.shape)
    else:
        path, module, attr = found
        ids = call.data_ids()
        channels = ids.shape[dim]
        in_chan, in_node = channel_pairs(ids, dim)
        group = call.builder.add_block(
            path, "diag", channels, channels, 1, in_chan, in_node, DiagonalWeight(module, channels, param_name=attr)
        )
        ids = broadcast_channels(group.nodes, value.shape, dim)
    return (ids, *[None] * (len(call.value) - 1)) if isinstance(call.value, tuple) else ids


@register_function(aten.layer_norm.default, aten.native_layer_norm.default)
def layer_norm(call: OpCall) -> torch.Tensor:
    if len(call.args[1]) != 1:
        return alias(call)
    return _diagonal(call, 2, -1)


@register_function(aten.rms_norm.default)
def rms_norm(call: OpCall) -> torch.Tensor:
    return _diagonal(call, 2, -1)


@register_function(aten.group_norm.default)
def group_norm(call: OpCall) -> torch.Tensor:
    return _diagonal(call, 2, 1)


@register_function(aten._native_batch_norm_legit_no_training.default, aten.batch_norm.default)
def batch_norm(call: OpCall) -> torch.Tensor:
    return _diagonal(call, 1, 1)


@register_function(aten.mul.Tensor)
def mul(call: OpCall) -> torch.Tensor:
    """``weight * x`` with a per-channel parameter (RMSNorm's scale) is a diagonal block."""
    for index in (0, 1):
        found = _param(call, index)
        other = call.arg_ids[1 - index]
        if found is not None and _tracked(other):
            path, module, attr = found
            weight = getattr(module, attr)
            if weight.dim() == 1 and weight.numel() == call.value.shape[-1] > 1:
                channels = weight.numel()
                ids = torch.broadcast_to(other, call.value.shape)
                in_chan, in_node = channel_pairs(ids, -1)
                group = call.builder.add_block(
                    path, "diag", channels, channels, 1, in_chan, in_node,
                    DiagonalWeight(module, channels, param_name=attr),
                )
                return broadcast_channels(group.nodes, call.value.shape, -1)
    return elementwise(call)


register_function(aten.cumsum.default)(channel_local)  # RoBERTa's positions from the padding mask


@register_function(aten.mean.dim, aten.sum.dim_IntList, aten.var.correction, aten.amax.default)
def reduction(call: OpCall) -> torch.Tensor:
    """A reduction that keeps channels (mean over tokens) is channel-local. One that mixes
    channels into a statistic kept broadcastable (``keepdim``: RMSNorm/LayerNorm written
    out) is a normaliser: like LayerNorm's, its statistic carries no channels."""
    try:
        return channel_local(call)
    except TraceError:
        keepdim = bool(call.node.kwargs.get("keepdim", call.args[2] if len(call.args) > 2 else False))
        if not keepdim:
            raise
        return constant(call)


@register_function(aten.scaled_dot_product_attention.default)
def attention(call: OpCall) -> torch.Tensor:
    """Heads as groups: score node ``h`` joins query head ``h``'s channels with those of
    its key head (GQA: ``h // (H / H_kv)``); mixed channel ``(h, j)`` joins value channel
    ``j`` of its value head with score ``h``. The mask and scale route, they carry no channels."""
    q, k, v = call.arg_ids[:3]
    if not all(_tracked(t) for t in (q, k, v)):
        raise call.fail("query, key and value must all carry channels")
    n_heads, head_dim = call.value.shape[1], call.value.shape[-1]
    per_kv = n_heads // k.shape[1]
    name = call.name.rpartition(".")[0] or call.name

    def head_set(ids: torch.Tensor, head: int) -> np.ndarray:
        nodes = ids[:, head].unique().numpy()
        return nodes[nodes >= 0]

    key_sets = [head_set(k, h // per_kv) for h in range(n_heads)]
    # transformers repeats k/v heads before the call (repeat_kv): count the distinct key heads
    n_kv = len({s.tobytes() for s in key_sets})
    scores = set_join(
        call, f"{name}.scores", [np.union1d(head_set(q, h), key_sets[h]) for h in range(n_heads)]
    )
    value_sets = []
    for h in range(n_heads):
        channels = v[:, h // per_kv].movedim(-1, 0).reshape(v.shape[-1], -1)
        for j in range(head_dim):
            nodes = channels[j].unique().numpy()
            value_sets.append(np.append(nodes[nodes >= 0], scores.offset + h))
    mixed = set_join(call, f"{name}.heads", value_sets)
    call.builder.heads.append(AttentionHeads(name, scores, mixed, n_heads, n_kv, head_dim))
    per_head = torch.as_tensor(mixed.nodes).reshape(1, n_heads, 1, head_dim)
    return per_head.expand(call.value.shape)


# ---------------------------------------------------------------- families

register_function(
    aten.view.default, aten._unsafe_view.default, aten.reshape.default, aten.transpose.int, aten.permute.default,
    aten.unsqueeze.default, aten.squeeze.dim, aten.squeeze.dims, aten.squeeze.default, aten.expand.default,
    aten.slice.Tensor, aten.select.int, aten.cat.default, aten.split.Tensor, aten.split_with_sizes.default,
    aten.chunk.default, aten.unbind.int, aten.clone.default, aten.contiguous.default, aten.flatten.using_ints,
    aten.unflatten.int, aten.t.default, aten.repeat.default, aten.index_select.default, aten.stack.default,
    aten.narrow.default, aten.roll.default, aten.flip.default, aten.alias.default, aten.detach.default,
    aten.detach_.default, aten.lift_fresh_copy.default, aten.index.Tensor, aten.movedim.int, aten.expand_as.default,
    aten.channel_shuffle.default, aten.pixel_shuffle.default, aten.pixel_unshuffle.default, aten.view_as.default,
    aten.repeat_interleave.self_int, aten.tensor_split.sections, aten.swapaxes.default, aten.gather.default,
)(movement)
register_function(
    aten.silu.default, aten.gelu.default, aten.relu.default, aten.relu_.default, aten.tanh.default,
    aten.sigmoid.default, aten.neg.default, aten.exp.default, aten.rsqrt.default, aten.sqrt.default,
    aten.pow.Tensor_Scalar, aten.to.dtype, aten.to.device, aten.to.dtype_layout, aten._to_copy.default,
    aten.type_as.default, aten.dropout.default, aten.softmax.int, aten._softmax.default, aten.log_softmax.int,
    aten._log_softmax.default, aten.abs.default, aten.erf.default, aten.sin.default, aten.cos.default,
    aten.clamp.default, aten.clamp_min.default, aten.hardtanh.default, aten.hardswish.default,
    aten.hardsigmoid.default, aten.leaky_relu.default, aten.elu.default, aten.mish.default, aten.softplus.default,
    aten.masked_fill.Scalar, aten.masked_fill.Tensor, aten.eq.Scalar, aten.ne.Scalar, aten.gt.Scalar,
    aten.lt.Scalar, aten.ge.Scalar, aten.le.Scalar, aten.eq.Tensor, aten.ne.Tensor, aten.bitwise_not.default,
    aten.logical_not.default, aten.square.default, aten.reciprocal.default, aten.log.default, aten.tril.default,
    aten.triu.default, aten.native_dropout.default, aten.feature_dropout.default,
)(alias)
register_function(
    aten.add.Tensor, aten.add.Scalar, aten.sub.Tensor, aten.sub.Scalar, aten.rsub.Scalar, aten.rsub.Tensor,
    aten.mul.Scalar, aten.div.Tensor, aten.div.Scalar, aten.where.self, aten.maximum.default, aten.minimum.default,
    aten.pow.Tensor_Tensor, aten.add_.Tensor, aten.mul_.Tensor, aten.bitwise_and.Tensor, aten.bitwise_or.Tensor,
    aten.logical_and.default, aten.logical_or.default, aten.__and__.Tensor, aten.__or__.Tensor,
)(elementwise)
register_function(
    aten.zeros_like.default, aten.ones_like.default, aten.full_like.default, aten.empty_like.default,
    aten.new_zeros.default, aten.new_ones.default, aten.new_full.default, aten.new_empty.default,
)(constant)
register_function(
    aten.avg_pool1d.default, aten.avg_pool2d.default, aten.adaptive_avg_pool1d.default,
    aten.adaptive_avg_pool2d.default, aten.max_pool2d.default, aten.constant_pad_nd.default, aten.pad.default,
)(spatial)
