"""Index maps: tensors whose every element holds the id of the channel node it came from.

Pushing an index map through a data-movement op (view, permute, cat, chunk,
pixel/channel shuffle...) tells which channel lands where without a rule per op.
``-1`` marks elements that carry no channel (constants, zero padding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

NO_NODE = -1
ID_DTYPE = torch.int64


def broadcast_channels(nodes: np.ndarray | torch.Tensor, shape: torch.Size, dim: int) -> torch.Tensor:
    """An index map of ``shape`` whose slice ``c`` along ``dim`` holds ``nodes[c]``
    (a stride-0 view: no memory beyond the vector)."""
    nodes = torch.as_tensor(nodes, dtype=ID_DTYPE)
    dim = dim % len(shape)
    view = [1] * len(shape)
    view[dim] = shape[dim]
    return nodes.reshape(view).expand(shape)


def channel_vector(ids: torch.Tensor, dim: int) -> torch.Tensor | None:
    """The per-channel ids along ``dim`` if the map is constant across every other dim.

    Maps made by :func:`broadcast_channels` are stride-0 views, recognised for free.
    """
    dim = dim % ids.dim()
    index = [0] * ids.dim()
    index[dim] = slice(None)
    first = ids[tuple(index)]
    broadcast = all(st == 0 or n == 1 for d, (st, n) in enumerate(zip(ids.stride(), ids.shape)) if d != dim)
    if broadcast:
        return first
    view = [1] * ids.dim()
    view[dim] = ids.shape[dim]
    if torch.equal(ids, first.reshape(view).expand_as(ids)):
        return first
    return None


def channel_pairs(ids: torch.Tensor, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(channel, node)`` pairs: which nodes feed each channel along ``dim``.

    One pair per channel in the common case; several when spatial positions of
    one channel come from different nodes (a flatten of a conv map, a concat of
    tokens). Elements without a node (``-1``) are dropped.
    """
    vector = channel_vector(ids, dim)
    if vector is not None:
        channels = torch.arange(vector.numel())
        keep = vector >= 0
        return channels[keep].numpy(), vector[keep].numpy()
    per_channel = ids.movedim(dim, -1).reshape(-1, ids.shape[dim])
    if per_channel.shape[0] > 1:
        per_channel = torch.unique(per_channel, dim=0)  # distinct rows (tokens, positions) first
    channels = torch.arange(ids.shape[dim]).expand_as(per_channel)
    keep = per_channel >= 0
    pairs = torch.stack([channels[keep], per_channel[keep]], 1)
    pairs = torch.unique(pairs, dim=0)
    return pairs[:, 0].numpy(), pairs[:, 1].numpy()


def map_structure(fn: Callable[[Any], Any], value: Any) -> Any:
    """Apply ``fn`` to every leaf of nested tuples/lists/dicts."""
    if isinstance(value, (tuple, list)):
        mapped = [map_structure(fn, v) for v in value]
        return type(value)(mapped) if not hasattr(value, "_fields") else type(value)(*mapped)
    if isinstance(value, dict):
        return {k: map_structure(fn, v) for k, v in value.items()}
    return fn(value)


def leaves(value: Any) -> list[Any]:
    """Every leaf of a nested structure, in order."""
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in leaves(v)]
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in leaves(v)]
    return [value]
