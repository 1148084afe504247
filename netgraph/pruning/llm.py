"""LLM-Pruner-style structural pruning of a LLaMA: whole attention heads and MLP channels.

The coupled units, as in LLM-Pruner (Ma et al., 2023):

- an attention *unit* is one key/value head with the query heads that share it
  (one head without GQA): rows of ``q_proj``/``k_proj``/``v_proj`` and columns of
  ``o_proj``, removed together so Q/K/V/O stay consistent;
- an MLP unit is one intermediate channel: a row of ``gate_proj`` and ``up_proj``
  and a column of ``down_proj``.

The hidden size is kept, and the first and last blocks stay dense by default.
Importances: ``taylor`` (first-order ``sum |w * dL/dw|`` over the unit, gradients
accumulated over calibration batches from the training split), ``connect`` (the
unit's centrality on the traced channel graph: the share of input->output path mass
through the ``o_proj``/``down_proj`` input channels it owns, data-free) and
``taylor_connect`` (their product). Slicing goes through Torch-Pruning's linear
pruners; the config records every layer's new sizes so the model runs, saves and is
rebuilt by :func:`llama_from_config`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from netgraph.errors import NetgraphError

IMPORTANCES = ("taylor", "connect", "taylor_connect")
#: config attribute holding ``{layer index: [n_heads, n_kv_heads, intermediate]}`` of pruned layers
SHAPES_KEY = "netgraph_pruned_layers"


@dataclass
class LayerUnits:
    """Scores of one decoder layer's prunable units."""

    heads: Tensor  # (n_kv_heads,) attention units
    channels: Tensor  # (intermediate,) MLP channels


@dataclass
class LlmPruneResult:
    pruned_layers: list[int]
    heads_before: int
    heads_after: int
    channels_before: int
    channels_after: int
    params_before: int
    params_after: int


def _layers(lm: nn.Module) -> nn.ModuleList:
    try:
        return lm.model.layers
    except AttributeError:
        raise NetgraphError(f"{type(lm).__name__} is not a LLaMA-style causal LM (no model.layers)") from None


def _geometry(layer: nn.Module) -> tuple[int, int, int]:
    """``(n_heads, n_kv_heads, head_dim)`` of a decoder layer, from its weights."""
    attn = layer.self_attn
    head_dim = attn.head_dim
    return attn.q_proj.out_features // head_dim, attn.k_proj.out_features // head_dim, head_dim


def _unit_rows(layer: nn.Module) -> tuple[Tensor, Tensor]:
    """Per attention unit: its q rows (= o columns) and its k/v rows, as index matrices."""
    n_heads, n_kv, head_dim = _geometry(layer)
    per = n_heads // n_kv
    q = torch.arange(n_heads * head_dim).reshape(n_kv, per * head_dim)
    kv = torch.arange(n_kv * head_dim).reshape(n_kv, head_dim)
    return q, kv


def taylor_scores(lm: nn.Module, batches: Iterable[Tensor]) -> list[LayerUnits]:
    """First-order Taylor importance ``sum |w * g|`` per unit, ``g`` the gradient of the
    next-token loss summed over ``batches`` (token ids ``(B, T)``)."""
    device = next(lm.parameters()).device
    lm.zero_grad(set_to_none=True)
    seen = 0
    for ids in batches:
        ids = ids.to(device)
        logits = lm(input_ids=ids, use_cache=False).logits
        F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)).backward()
        seen += 1
    if seen == 0:
        raise NetgraphError("Taylor importance needs at least one calibration batch")
    scores = []
    for layer in _layers(lm):
        attn, mlp = layer.self_attn, layer.mlp

        def saliency(linear: nn.Linear) -> Tensor:
            return (linear.weight * linear.weight.grad).abs().detach()

        q_rows, kv_rows = _unit_rows(layer)
        q = saliency(attn.q_proj).sum(1)[q_rows].sum(1)
        o = saliency(attn.o_proj).sum(0)[q_rows].sum(1)
        kv = (saliency(attn.k_proj).sum(1) + saliency(attn.v_proj).sum(1))[kv_rows].sum(1)
        channels = saliency(mlp.gate_proj).sum(1) + saliency(mlp.up_proj).sum(1) + saliency(mlp.down_proj).sum(0)
        scores.append(LayerUnits(q + o + kv, channels))
    lm.zero_grad(set_to_none=True)
    return scores


def connect_scores(lm: nn.Module, seq_len: int = 16) -> list[LayerUnits]:
    """CoNNect importance: each unit's centrality (share of input->output path mass) on the
    traced channel graph, read at the input channels of ``o_proj`` and ``down_proj``
    that it owns (every path through a head or channel crosses exactly those)."""
    from netgraph.connectivity import flows
    from netgraph.graph import trace

    vocab = lm.get_input_embeddings().num_embeddings
    device = next(lm.parameters()).device
    ids = torch.randint(0, vocab, (1, seq_len), device=device)
    graph = trace(lm, example_input=ids, frontend="export")
    centrality = flows(graph).centrality()
    by_name = {b.name: b for b in graph.param_blocks()}
    names = {m: n for n, m in lm.named_modules()}
    scores = []
    for layer in _layers(lm):
        o = by_name[names[layer.self_attn.o_proj]].per_channel(centrality)
        down = by_name[names[layer.mlp.down_proj]].per_channel(centrality)
        q_rows, _ = _unit_rows(layer)
        scores.append(LayerUnits(torch.as_tensor(o)[q_rows].sum(1), torch.as_tensor(down)))
    return scores


def importance_scores(
    lm: nn.Module, importance: str, calibration: Iterable[Tensor] = (), seq_len: int = 16
) -> list[LayerUnits]:
    """Unit scores of every layer for ``importance`` (one of :data:`IMPORTANCES`)."""
    if importance not in IMPORTANCES:
        raise NetgraphError(f"importance must be one of {', '.join(IMPORTANCES)}, got {importance!r}")
    if importance == "connect":
        return connect_scores(lm, seq_len)
    taylor = taylor_scores(lm, calibration)
    if importance == "taylor":
        return taylor
    connect = connect_scores(lm, seq_len)
    return [
        LayerUnits(t.heads.double() * c.heads.double(), t.channels.double() * c.channels.double())
        for t, c in zip(taylor, connect)
    ]


def _lowest(scores: Tensor, n: int) -> list[int]:
    """Indices of the ``n`` lowest scores (ties broken by index, deterministic)."""
    order = sorted(range(len(scores)), key=lambda i: (float(scores[i]), i))
    return sorted(order[:n])


def prune_llama(
    lm: nn.Module,
    head_ratio: float,
    channel_ratio: float | None = None,
    importance: str = "taylor",
    calibration: Iterable[Tensor] = (),
    keep_first_last: bool = True,
    seq_len: int = 16,
) -> LlmPruneResult:
    """Remove ``head_ratio`` of the attention units and ``channel_ratio`` (default: the
    same) of the MLP channels of every pruned layer, in place, lowest importance first.

    Raises :class:`NetgraphError` naming the layer when a ratio would remove every head
    or every channel of a layer, before anything is changed."""
    import torch_pruning as tp

    channel_ratio = head_ratio if channel_ratio is None else channel_ratio
    for name, ratio in (("head_ratio", head_ratio), ("channel_ratio", channel_ratio)):
        if not (math.isfinite(ratio) and 0 <= ratio < 1):
            raise NetgraphError(f"{name} must be in [0, 1), got {ratio}")
    layers = _layers(lm)
    chosen = list(range(1, len(layers) - 1)) if keep_first_last else list(range(len(layers)))
    plan = {}
    for i in chosen:
        n_heads, n_kv, head_dim = _geometry(layers[i])
        inter = layers[i].mlp.gate_proj.out_features
        drop_units, drop_channels = round(head_ratio * n_kv), round(channel_ratio * inter)
        if drop_units >= n_kv:
            raise NetgraphError(
                f"head_ratio {head_ratio} removes every head of layer {i} ({n_kv} key/value heads): lower it"
            )
        if drop_channels >= inter:
            raise NetgraphError(f"channel_ratio {channel_ratio} removes every MLP channel of layer {i}: lower it")
        plan[i] = (drop_units, drop_channels)
    params_before = sum(p.numel() for p in lm.parameters())
    heads_before = sum(_geometry(layer)[0] for layer in layers)
    channels_before = sum(layer.mlp.gate_proj.out_features for layer in layers)
    scores = importance_scores(lm, importance, calibration, seq_len)
    config = lm.config
    shapes = dict(getattr(config, SHAPES_KEY, None) or {})
    for i, (drop_units, drop_channels) in plan.items():
        layer, units = layers[i], scores[i]
        attn, mlp = layer.self_attn, layer.mlp
        q_rows, kv_rows = _unit_rows(layer)
        units_out = _lowest(units.heads, drop_units)
        if units_out:
            q_out = q_rows[units_out].reshape(-1).tolist()
            kv_out = kv_rows[units_out].reshape(-1).tolist()
            tp.prune_linear_out_channels(attn.q_proj, q_out)
            tp.prune_linear_out_channels(attn.k_proj, kv_out)
            tp.prune_linear_out_channels(attn.v_proj, kv_out)
            tp.prune_linear_in_channels(attn.o_proj, q_out)
        channels_out = _lowest(units.channels, drop_channels)
        if channels_out:
            tp.prune_linear_out_channels(mlp.gate_proj, channels_out)
            tp.prune_linear_out_channels(mlp.up_proj, channels_out)
            tp.prune_linear_in_channels(mlp.down_proj, channels_out)
        n_heads, n_kv, _ = _geometry(layer)
        shapes[str(i)] = [n_heads, n_kv, mlp.gate_proj.out_features]
    config.head_dim = _geometry(layers[0])[2]
    setattr(config, SHAPES_KEY, shapes)
    return LlmPruneResult(
        pruned_layers=chosen,
        heads_before=heads_before,
        heads_after=sum(_geometry(layer)[0] for layer in layers),
        channels_before=channels_before,
        channels_after=sum(layer.mlp.gate_proj.out_features for layer in layers),
        params_before=params_before,
        params_after=sum(p.numel() for p in lm.parameters()),
    )


def layer_shapes(lm: nn.Module) -> list[tuple[int, int, int]]:
    """``(n_heads, n_kv_heads, intermediate)`` of every layer, read from the weights."""
    return [(*_geometry(layer)[:2], layer.mlp.gate_proj.out_features) for layer in _layers(lm)]


def config_shapes(config) -> list[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    """The per-layer shapes a (pruned) config describes."""
    pruned = getattr(config, SHAPES_KEY, None) or {}
    dense = (config.num_attention_heads, config.num_key_value_heads, config.intermediate_size)
    return [tuple(pruned.get(str(i), dense)) for i in range(config.num_hidden_layers)]


def llama_from_config(config) -> nn.Module:  # type: ignore[no-untyped-def]
    """A ``LlamaForCausalLM`` with the (pruned) shapes of ``config``, ready for ``load_state_dict``."""
    from transformers import LlamaForCausalLM

    lm = LlamaForCausalLM(config)
    for layer, (n_heads, n_kv, inter) in zip(_layers(lm), config_shapes(config)):
        attn, mlp = layer.self_attn, layer.mlp
        d = attn.head_dim
        for linear, rows in ((attn.q_proj, n_heads * d), (attn.k_proj, n_kv * d), (attn.v_proj, n_kv * d),
                             (mlp.gate_proj, inter), (mlp.up_proj, inter)):
            _keep_out(linear, rows)
        _keep_in(attn.o_proj, n_heads * d)
        _keep_in(mlp.down_proj, inter)
    return lm


def _keep_out(linear: nn.Linear, rows: int) -> None:
    linear.weight = nn.Parameter(linear.weight.data[:rows].clone())
    if linear.bias is not None:
        linear.bias = nn.Parameter(linear.bias.data[:rows].clone())
    linear.out_features = rows


def _keep_in(linear: nn.Linear, cols: int) -> None:
    linear.weight = nn.Parameter(linear.weight.data[:, :cols].clone())
    linear.in_features = cols


def macs_per_token(lm: nn.Module, seq_len: int) -> int:
    """Multiply-accumulates per generated token at context ``seq_len``: every Linear
    (embedding lookups are free) plus ``QK^T`` and ``softmax(.)V`` over the context."""
    linear = sum(m.in_features * m.out_features for m in lm.modules() if isinstance(m, nn.Linear))
    attention = sum(2 * n_heads * _geometry(layer)[2] * seq_len
                    for layer, (n_heads, _, _) in zip(_layers(lm), layer_shapes(lm)))
    return int(linear + attention)
