"""Trace a deep stack of identical layers once: the channel graph of an N-layer
transformer from the trace of the same model with three layers.

``torch.export`` costs about half a second per decoder layer, most of the time a
streaming analysis of a mid-sized LLM takes (DESIGN.md section 5). The layers of a
``transformers`` decoder repeat exactly, so the graph of layer ``k`` is that of
layer 2 with its node ids shifted by ``(k - 2)`` layer widths, its modules renamed
``layers.2 -> layers.k`` and the counters of its fx node names (``add_16``) advanced
by what one layer adds (``add_16 -> add_22``). The three-layer trace shows that
pattern between its layers 1 and 2 (layer 0 may differ, say by unsuffixed names);
anything the pattern does not explain (a layer that reads two layers back, a
non-uniform stack, a head that reads a middle layer) falls back to the full trace.
The result is the full trace's graph, node for node and name for name
(``tests/test_streaming.py`` compares them).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from netgraph.graph.channels import AttentionHeads, Block, ChannelGraph, NodeGroup
from netgraph.graph.tracer import trace

__all__ = ["trace_repeated"]

_TEMPLATE_LAYERS = 3
_COUNTER = re.compile(r"^(.*?)(?:_(\d+))?$")


def trace_repeated(
    model: nn.Module,
    example_input: Any = None,
    input_shape: Sequence[int] | None = None,
    input_dtype: torch.dtype | None = None,
) -> ChannelGraph:
    """:func:`netgraph.trace` of a meta-device ``transformers`` model, tracing three
    of its decoder layers and replicating the third for the rest.

    Falls back to the full trace when the model is not on the meta device, has no
    uniform ``config.num_hidden_layers`` stack of more than three layers, or when
    its three-layer graph does not repeat exactly from layer 1 to layer 2.

    Parameters
    ----------
    model : nn.Module
        A ``transformers`` model built on the meta device.
    example_input, input_shape, input_dtype
        As for :func:`netgraph.trace`.

    Returns
    -------
    ChannelGraph
        Equal to ``trace(model, ...)``; its blocks read ``model``'s modules.
    """
    def full() -> ChannelGraph:
        return trace(model, example_input=example_input, input_shape=input_shape, input_dtype=input_dtype)

    stack = _layer_stack(model)
    small = _shrunk(model, stack) if stack is not None else None
    if small is None:
        return full()
    template = trace(small, example_input=example_input, input_shape=input_shape, input_dtype=input_dtype)
    graph = _replicate(template, small, model, stack[0], stack[1])  # type: ignore[index]
    return graph if graph is not None else full()


def _layer_stack(model: nn.Module) -> tuple[str, int] | None:
    """``(path, n)`` of the model's ``num_hidden_layers`` list of identical layers, on meta."""
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if not isinstance(n, int) or n <= _TEMPLATE_LAYERS:
        return None
    if any(not t.is_meta for t in [*model.parameters(), *model.buffers()]):
        return None
    types = getattr(model.config, "layer_types", None)
    if types is not None and len(set(types)) > 1:  # e.g. sliding and full attention alternate
        return None
    stacks = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == n]
    if len(stacks) != 1:
        return None
    path, layers = stacks[0]
    shapes = {_signature(layer) for layer in layers}
    return (path, n) if len(shapes) == 1 else None


def _signature(module: nn.Module) -> tuple:
    """Types and tensor shapes of a module tree: equal for layers that trace alike."""
    tensors = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    return (tuple((name, type(m).__name__) for name, m in module.named_modules()),
            tuple((name, tuple(t.shape), t.dtype) for name, t in tensors))


def _shrunk(model: nn.Module, stack: tuple[str, int]) -> nn.Module | None:
    """The same model class and config with three layers, on meta; None if that fails."""
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = _TEMPLATE_LAYERS
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = config.layer_types[:_TEMPLATE_LAYERS]
    try:
        with torch.device("meta"):
            small = type(model)(config).eval()
    except Exception:  # noqa: BLE001 - a model that cannot be rebuilt this way is traced in full
        return None
    full_names = {n: tuple(t.shape) for n, t in model.named_parameters(remove_duplicate=False)}
    inside = f"{stack[0]}."
    for name, tensor in small.named_parameters(remove_duplicate=False):
        if full_names.get(name) != tuple(tensor.shape):
            return None
    outside = {n for n in full_names if not n.startswith(inside)}
    if outside != {n for n, _ in small.named_parameters(remove_duplicate=False) if not n.startswith(inside)}:
        return None
    return small


def _split(name: str) -> tuple[str, int | None]:
    """``'a.b.add_16'`` -> ``('a.b.add', 16)``; no counter -> ``(name, None)``."""
    head, _, last = name.rpartition(".")
    match = _COUNTER.match(last)
    base, counter = match.group(1), match.group(2)  # type: ignore[union-attr]
    return (f"{head}.{base}" if head else base), (int(counter) if counter is not None else None)


class _Pattern:
    """How names, nodes and modules of layer 2 become those of layer ``k``."""

    def __init__(self, path: str, starts: list[int], width: int, names: dict[int, str]) -> None:
        self.path, self.starts, self.width, self.names = path, starts, width, names
        self.delta: dict[str, int] = {}  # fx op base name -> counter increase per layer

    def prefix(self, layer: int) -> str:
        return f"{self.path}.{layer}."

    def move(self, name: str, layer: int, steps: int) -> str | None:
        """``name`` of layer 2 (or past it) as it is ``steps`` layers further on; None if unknown."""
        if name.startswith(self.prefix(2)) and layer >= 0:
            name = self.prefix(layer) + name[len(self.prefix(2)):]
        base, counter = _split(name)
        if counter is None or steps == 0:
            return name
        op = base.rpartition(".")[2]
        if op not in self.delta:
            return None
        return f"{base}_{counter + steps * self.delta[op]}"

    def learn(self, name1: str, name2: str) -> bool:
        """Record (and check) the counter step from a layer-1 name to its layer-2 twin."""
        if not name1.startswith(self.prefix(1)) or not name2.startswith(self.prefix(2)):
            return name1 == name2
        (base1, c1), (base2, c2) = _split(self.prefix(2) + name1[len(self.prefix(1)):]), _split(name2)
        if base1 != base2 or (c1 is None) != (c2 is None):
            return False
        if c1 is None:
            return True
        op = base1.rpartition(".")[2]
        return self.delta.setdefault(op, c2 - c1) == c2 - c1  # type: ignore[operator]

    def module_name(self, module: nn.Module | None) -> str | None:
        return None if module is None else self.names.get(id(module))


def _segments(groups: list[NodeGroup], path: str) -> list[tuple[int, int]] | None:
    """Group index ranges of layers 0..2, contiguous and back to back, or None."""
    spans = []
    for layer in range(_TEMPLATE_LAYERS):
        members = [i for i, g in enumerate(groups) if g.name.startswith(f"{path}.{layer}.")]
        if not members or members != list(range(members[0], members[-1] + 1)):
            return None
        spans.append((members[0], members[-1] + 1))
    if any(spans[i][1] != spans[i + 1][0] for i in range(len(spans) - 1)):
        return None
    return spans


def _same_source(b1: Block, b2: Block, pattern: _Pattern) -> bool:
    """Whether ``b2``'s weight source is ``b1``'s one layer on: same type and fields,
    its modules those of the next layer (or the same ones, outside the stack)."""
    s1, s2 = b1.source, b2.source
    if type(s1) is not type(s2) or not dataclasses.is_dataclass(s1):
        return False
    for f in dataclasses.fields(s1):
        v1, v2 = getattr(s1, f.name), getattr(s2, f.name)
        if isinstance(v1, nn.Module) or isinstance(v2, nn.Module):
            if not (isinstance(v1, nn.Module) and isinstance(v2, nn.Module)):
                return False
            name1, name2 = pattern.module_name(v1), pattern.module_name(v2)
            if name1 is None or name2 is None:
                return False
            if name1.startswith(pattern.prefix(1)):
                if name2 != pattern.prefix(2) + name1[len(pattern.prefix(1)):]:
                    return False
            elif name1 != name2 or name1.startswith(pattern.prefix(0)):
                return False
        elif isinstance(v1, torch.Tensor) or isinstance(v2, torch.Tensor) or v1 != v2:
            return False  # a tensor held by a source would not follow the layer
    return True


def _repeats(b1: Block, b2: Block, pattern: _Pattern) -> bool:
    """Whether layer-2 block ``b2`` is layer-1 block ``b1`` one layer on."""
    if (b1.kind, b1.groups, b1.in_per_group) != (b2.kind, b2.groups, b2.in_per_group):
        return False
    if not pattern.learn(b1.name, b2.name) or b1.dst.offset + pattern.width != b2.dst.offset:
        return False
    if not np.array_equal(b1.in_chan, b2.in_chan):
        return False
    shifted = np.where(b1.in_node >= pattern.starts[0], b1.in_node + pattern.width, b1.in_node)
    return np.array_equal(shifted, b2.in_node) and _same_source(b1, b2, pattern)


def _replicate(template: ChannelGraph, small: nn.Module, model: nn.Module, path: str, n: int) -> ChannelGraph | None:
    """The ``n``-layer graph from the three-layer ``template`` of ``small``, reading
    ``model``'s modules; None when the template does not repeat exactly."""
    groups, blocks = template.groups, template.blocks
    spans = _segments(groups, path)
    if spans is None:
        return None
    starts = [groups[a].offset for a, _ in spans]
    end = groups[spans[2][1] - 1].offset + groups[spans[2][1] - 1].size
    width = starts[1] - starts[0]
    if starts[2] - starts[1] != width or end - starts[2] != width:
        return None
    names = {id(m): name for name, m in small.named_modules(remove_duplicate=False)}
    pattern = _Pattern(path, starts, width, names)
    one, two = groups[slice(*spans[1])], groups[slice(*spans[2])]
    if len(one) != len(two):
        return None
    for g1, g2 in zip(one, two):
        if (g1.size, g1.kind, g1.offset + width) != (g2.size, g2.kind, g2.offset) or not pattern.learn(g1.name, g2.name):
            return None
    index = {id(g): i for i, g in enumerate(groups)}
    bounds = [spans[0][0], spans[1][0], spans[2][0], spans[2][1]]
    where = np.searchsorted(bounds, [index[id(b.dst)] for b in blocks], side="right") - 1  # -1 head, 3 tail
    if np.any(np.diff(where) < 0):
        return None
    in_layer = {k: [b for b, at in zip(blocks, where) if at == k] for k in range(-1, 4)}
    if len(in_layer[1]) != len(in_layer[2]) or not all(_repeats(b1, b2, pattern) for b1, b2 in zip(in_layer[1], in_layer[2])):
        return None
    for nodes in [*(b.in_node for b in in_layer[3]), template.output_nodes]:
        if np.any((nodes >= starts[0]) & (nodes < starts[2])):  # the tail reads a middle layer
            return None
    if np.any(template.input_nodes >= starts[0]):
        return None
    return _assemble(template, model, pattern, spans, in_layer, n)


def _assemble(template: ChannelGraph, model: nn.Module, pattern: _Pattern, spans: list[tuple[int, int]],
              in_layer: dict[int, list[Block]], n: int) -> ChannelGraph | None:
    """Head and layers 0-2 as traced, layer 2 again for layers 3..n-1, the tail moved on."""
    extra = n - _TEMPLATE_LAYERS
    width, starts = pattern.width, pattern.starts
    groups: list[NodeGroup] = []
    placed: dict[tuple[int, int], NodeGroup] = {}

    def place(group: NodeGroup, layer: int, steps: int) -> bool:
        name = pattern.move(group.name, layer, steps)
        if name is None:
            return False
        placed[(id(group), layer)] = NodeGroup(name=name, offset=group.offset + steps * width, size=group.size,
                                               kind=group.kind)
        groups.append(placed[(id(group), layer)])
        return True

    def shift(nodes: np.ndarray, start: int, steps: int) -> np.ndarray:
        return np.where(nodes >= start, nodes + steps * width, nodes) if steps else nodes

    def source(block: Block, layer: int) -> Any:
        changes = {}
        for f in dataclasses.fields(block.source):
            value = getattr(block.source, f.name)
            if isinstance(value, nn.Module):
                name = pattern.module_name(value)
                if layer >= 0 and name.startswith(pattern.prefix(2)):  # type: ignore[union-attr]
                    name = pattern.prefix(layer) + name[len(pattern.prefix(2)):]  # type: ignore[index]
                changes[f.name] = model.get_submodule(name)  # type: ignore[arg-type]
        return dataclasses.replace(block.source, **changes)

    def copy_block(block: Block, layer: int, steps: int, start: int) -> Block | None:
        name = pattern.move(block.name, layer, steps)
        if name is None:
            return None
        return Block(name=name, kind=block.kind, dst=placed[(id(block.dst), layer)], groups=block.groups,
                     in_per_group=block.in_per_group, in_chan=block.in_chan, in_node=shift(block.in_node, start, steps),
                     source=source(block, layer))

    plan = [(template.groups[: spans[2][1]], [b for k in range(-1, 3) for b in in_layer[k]], -1, 0, 0)]
    plan += [(template.groups[slice(*spans[2])], in_layer[2], k, k - 2, starts[1]) for k in range(_TEMPLATE_LAYERS, n)]
    plan += [(template.groups[spans[2][1]:], in_layer[3], -2, extra, starts[2])]
    blocks: list[Block] = []
    for part_groups, part_blocks, layer, steps, start in plan:
        if not all(place(g, layer, steps) for g in part_groups):
            return None
        for block in part_blocks:
            copied = copy_block(block, layer, steps, start)
            if copied is None:
                return None
            blocks.append(copied)
    heads = []
    for head in template.heads:
        if (id(head.scores), -1) in placed:
            versions = [(-1, head.name)]
            if head.name.startswith(pattern.prefix(2)):
                versions += [(k, pattern.prefix(k) + head.name[len(pattern.prefix(2)):]) for k in range(3, n)]
        else:
            versions = [(-2, pattern.move(head.name, -2, extra))]
        for layer, name in versions:
            if name is None:
                return None
            heads.append(AttentionHeads(name=name, scores=placed[(id(head.scores), layer)],
                                        channels=placed[(id(head.channels), layer)], n_heads=head.n_heads,
                                        n_kv_heads=head.n_kv_heads, head_dim=head.head_dim))
    heads.sort(key=lambda h: h.scores.offset)
    return ChannelGraph(model=model, groups=groups, blocks=blocks, input_nodes=template.input_nodes,
                        output_nodes=shift(template.output_nodes, starts[2], extra), heads=heads)
