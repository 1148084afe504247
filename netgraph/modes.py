"""Scoring and tracing run in eval mode without leaving the model changed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run the block in eval mode (BN uses its running stats and does not update
    them, dropout is off), then give every submodule back its own training flag
    (``model.train(previous)`` would flatten mixed flags)."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training
