"""A model ``torch.fx`` cannot trace: data-dependent control flow inside ``gate``.

Used by the tests as ``untraceable_model:build`` (``package.module:factory``).
Making ``gate`` (or the class ``Gate``) a leaf lets netgraph trace the rest.
``untraceable_model:broken`` is a factory that raises.
"""

from __future__ import annotations

import torch
from torch import nn


class Gate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent: fx cannot trace this
            return self.fc(x)
        return -self.fc(x)


class Untraceable(nn.Module):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.inp = nn.Linear(6, 4)
        self.gate = Gate()
        self.out = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.gate(self.inp(x))))


def build(num_classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return Untraceable(num_classes)


def broken(num_classes: int = 3) -> nn.Module:
    raise RuntimeError("this factory is broken\nsecond line of the message")
