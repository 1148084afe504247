"""Device selection: CUDA when present, else CPU; never hard-coded."""

from __future__ import annotations

import torch


def pick_device(requested: str | None = None) -> torch.device:
    """Return ``requested`` if given, else the first CUDA device, else the CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
