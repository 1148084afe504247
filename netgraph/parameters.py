"""The weights netgraph works on: which are prunable, and what the forward pass sees.

The bottom of the package: the channel graph, pruning and training all read
weights through :func:`effective_weight` (masks and parametrizations applied) and
agree on :func:`prunable_parameters`. It imports nothing but torch, so the
training engine can use it without loading the tracer or Torch-Pruning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

from netgraph.errors import NetgraphError

Param = tuple[nn.Module, str]
"""A prunable weight: ``(module, parameter name)``, as ``torch.nn.utils.prune`` takes it."""

# ``_ConvNd`` covers Conv1d/2d/3d and ConvTranspose1d/2d/3d (and their lazy forms).
_PRUNABLE = (nn.Linear, nn.modules.conv._ConvNd)


# Inside ``reuse_weights()``: id -> (owner kept alive, value) for effective weights and aggregations.
_MEMO: ContextVar[dict | None] = ContextVar("netgraph_weight_memo", default=None)


@contextmanager
def reuse_weights() -> Iterator[None]:
    """Compute each effective weight and each aggregation of it once inside the block.

    For code that reads the same, unchanged weights several times in a row (a
    scoring round: forward flows, backward flows, per-weight scores). The weights
    must not change inside the block; cached values are held until it ends."""
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def memoised(key: tuple, owner: object, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """``compute()``, once per ``key`` inside :func:`reuse_weights` (``owner`` is kept
    alive with the value so its ``id`` in the key cannot be reused meanwhile)."""
    memo = _MEMO.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = (owner, compute())
    return memo[key][1]


class TensorLoader:
    """Gives a module real tensors for a while (see :func:`loaded`); the streaming
    analysis (:mod:`netgraph.connectivity.streaming`) reads them from a file."""

    def load(self, module: nn.Module) -> None:
        raise NotImplementedError

    def unload(self, module: nn.Module) -> None:
        raise NotImplementedError


_LOADER: ContextVar[TensorLoader | None] = ContextVar("netgraph_tensor_loader", default=None)
_HELD: set[nn.Module] = set()  # modules whose tensors an enclosing ``loaded`` block holds


@contextmanager
def loading_with(loader: TensorLoader) -> Iterator[None]:
    """Inside the block, :func:`loaded` asks ``loader`` for each module's tensors."""
    token = _LOADER.set(loader)
    try:
        yield
    finally:
        _LOADER.reset(token)


@contextmanager
def loaded(*modules: nn.Module | None) -> Iterator[None]:
    """The modules' own parameters and buffers hold real values inside the block.

    A no-op unless a :func:`loading_with` loader is active: then a model built on
    the meta device is read one module at a time, and each module's tensors are
    dropped again when the block ends, so nothing is held for the whole model."""
    loader = _LOADER.get()
    present = [m for m in dict.fromkeys(modules) if m is not None and m not in _HELD]  # an outer block holds them
    if loader is None or not present:
        yield
        return
    held = []
    try:
        for module in present:
            loader.load(module)
            held.append(module)
            _HELD.add(module)
        yield
    finally:
        for module in held:  # only what was loaded, even when a load failed half-way
            _HELD.discard(module)
            loader.unload(module)


def effective_weight(module: nn.Module, name: str) -> torch.Tensor:
    """The weight the forward pass uses: ``name_orig * name_mask`` under
    ``torch.nn.utils.prune`` (recomputed, since the cached attribute is only
    refreshed by a forward pass), else ``getattr`` (which applies parametrizations)."""
    return memoised(("weight", id(module), name), module, lambda: _effective_weight(module, name))


def _effective_weight(module: nn.Module, name: str) -> torch.Tensor:
    orig = getattr(module, f"{name}_orig", None)
    mask = getattr(module, f"{name}_mask", None)
    if orig is not None and mask is not None:
        return orig * mask
    return getattr(module, name)


def prunable_parameters(
    model: nn.Module, include_first: bool = True, include_last: bool = True
) -> list[Param]:
    """Every Linear and conv weight in module order (``model.modules()``, which is
    the definition order, normally the execution order). First and last are taken in
    that order; excluding them is the usual way to protect the input and output layers."""
    params = [(module, "weight") for module in model.modules() if isinstance(module, _PRUNABLE)]
    params = params[(0 if include_first else 1) : len(params) - (0 if include_last else 1)]
    if not params:
        raise NetgraphError("the model has no Linear or conv weights left to prune")
    return params
