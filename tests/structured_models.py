"""Small models for structured-pruning tests, importable as ``structured_models:factory``.

``branchy`` has a residual add (two conv+BN branches summed), a concat feeding a conv,
and a flatten into the head: every index mapping Torch-Pruning and the channel graph
must agree on. ``scaled`` multiplies by a bare ``nn.Parameter`` Torch-Pruning cannot group.
"""

from __future__ import annotations

import torch
from torch import nn


class Branchy(nn.Module):
    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(6)
        self.a = nn.Conv2d(6, 5, 3, padding=1)
        self.bna = nn.BatchNorm2d(5)
        self.b = nn.Conv2d(6, 5, 1)
        self.bnb = nn.BatchNorm2d(5)
        self.c = nn.Conv2d(5, 4, 3, padding=1)
        self.d = nn.Conv2d(5, 3, 1)
        self.e = nn.Conv2d(7, 4, 1)
        self.head = nn.Linear(4 * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn0(self.stem(x)))
        r = torch.relu(self.bna(self.a(h)) + self.bnb(self.b(h)))
        cat = torch.cat([self.c(r), self.d(r)], 1)
        return self.head(torch.flatten(nn.functional.avg_pool2d(self.e(cat), 2), 1))


def branchy(num_classes: int = 4) -> nn.Module:
    """Input 3x8x8."""
    return Branchy(num_classes)


class Scaled(nn.Module):
    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.scale = nn.Parameter(torch.ones(1, 6, 1, 1))
        self.head = nn.Linear(6, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.conv(x) * self.scale, 1), 1))


def scaled(num_classes: int = 4) -> nn.Module:
    """Input 3x8x8."""
    return Scaled(num_classes)
