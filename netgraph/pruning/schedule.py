"""How many weights to keep: at the requested target, and after each round of an
iterated method."""

from __future__ import annotations

from typing import Literal

from netgraph.errors import NetgraphError

Schedule = Literal["exponential", "linear"]


def target_keep(total: int, compression: float | None = None, sparsity: float | None = None) -> int:
    """Weights left at the target, which methods hit exactly.

    Give exactly one of ``compression`` (>= 1: keeps ``round(total / compression)``)
    and ``sparsity`` (in [0, 1): keeps ``total - round(sparsity * total)``), over
    *all* prunable weights, pruned or not. ``round`` is Python's (half to even).
    """
    if (compression is None) == (sparsity is None):
        raise NetgraphError("give exactly one of compression and sparsity")
    if sparsity is not None:
        if not 0 <= sparsity < 1:
            raise NetgraphError(f"sparsity must be in [0, 1), got {sparsity}")
        keep = total - round(sparsity * total)
    else:
        if not compression >= 1:
            raise NetgraphError(f"compression must be >= 1, got {compression}")
        keep = round(total / compression)
    if keep < 1:
        raise NetgraphError(f"that target leaves none of the {total} prunable weights")
    return keep


def keep_schedule(start: int, final: int, rounds: int, schedule: Schedule = "exponential") -> list[int]:
    """Weights to keep after each of ``rounds`` rounds, going from ``start`` alive
    weights to exactly ``final``.

    ``exponential`` (SynFlow's) keeps ``start * (final / start) ** (k / rounds)``
    after round k, so every round removes the same fraction of what is left;
    ``linear`` removes the same number of weights every round.
    """
    if rounds < 1:
        raise NetgraphError(f"iterations must be >= 1, got {rounds}")
    if schedule == "exponential":
        steps = [start * (final / start) ** (k / rounds) for k in range(1, rounds)]
    elif schedule == "linear":
        steps = [start - (start - final) * k / rounds for k in range(1, rounds)]
    else:
        raise NetgraphError(f"unknown schedule {schedule!r}; choose exponential or linear")
    return [round(step) for step in steps] + [final]
