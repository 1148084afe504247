"""How much to prune, in one unit everywhere: compression = total / remaining weights.

Users say it three ways, and each spelling is read the same way by every command
and function: ``100x`` or ``100`` (compression), ``99%`` (sparsity, the fraction
removed) and ``10^2`` (a decade exponent, as critical-compression plots use).
A bare number below 1 is refused rather than guessed: ``0.99`` could mean a 99 %
sparsity (100x) or the exponent 10^0.99 (9.77x), and the two differ tenfold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from netgraph.errors import NetgraphError

__all__ = ["parse_compression", "parse_levels", "sparsity_to_compression"]


def sparsity_to_compression(sparsity: float) -> float:
    """``0.99`` -> ``100.0``: the compression that removes that fraction of weights.

    Examples
    --------
    >>> sparsity_to_compression(0.75)
    4.0
    """
    if not 0 <= sparsity < 1:
        raise NetgraphError(f"sparsity must be in [0, 1), got {sparsity:g}")
    return 1.0 / (1.0 - sparsity)


def parse_compression(text: str | float) -> float:
    """A compression from any of its spellings: ``100x``, ``100``, ``99%``, ``10^2``.

    Examples
    --------
    >>> [round(parse_compression(t), 6) for t in ("100x", "100", "99%", "10^2")]
    [100.0, 100.0, 100.0, 100.0]
    """
    word = str(text).strip().lower().replace(" ", "")
    try:
        if word.endswith("%"):
            percent = float(word[:-1])
            if not 0 <= percent < 100:
                raise NetgraphError(f"sparsity {text} must be in [0%, 100%)")
            return _checked(sparsity_to_compression(percent / 100), text)
        if word.startswith("10^"):
            exponent = float(word[3:])
            if not (math.isfinite(exponent) and exponent >= 0):
                raise NetgraphError(f"exponent in {text} must be >= 0: a compression 10^x is >= 1")
            return float(10 ** round(exponent, 9))
        value = float(word.removesuffix("x"))
    except ValueError:
        raise NetgraphError(
            f"cannot read {text!r} as an amount of pruning: write a compression (100x), "
            "a sparsity (99%) or a decade exponent (10^2)"
        ) from None
    if 0 < value < 1 and not word.endswith("x"):
        raise NetgraphError(
            f"{text} is ambiguous: a compression is >= 1; write {value * 100:g}% for a sparsity of "
            f"{value:g} ({sparsity_to_compression(value):.4g}x) or 10^{value:g} for {10 ** value:.4g}x"
        )
    return _checked(value, text)


def _checked(value: float, text: str | float) -> float:
    if not (math.isfinite(value) and value >= 1):
        raise NetgraphError(f"compression {text} is below 1: compression is total/remaining weights >= 1")
    return float(value)


def parse_levels(text: str | Sequence[float | str]) -> list[float]:
    """Sorted, distinct compression levels from a comma list of amounts or a range.

    Each item is any spelling :func:`parse_compression` reads; ``10^a:10^b:s`` is
    the decades ``a, a+s, ..., b`` (``s`` in decades).

    Examples
    --------
    >>> [round(c, 2) for c in parse_levels("10x,99%,10^0.5")]
    [3.16, 10.0, 100.0]
    >>> [round(c, 2) for c in parse_levels("10^1:10^2:0.5")]
    [10.0, 31.62, 100.0]
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    levels: list[float] = []
    for item in items:
        word = str(item).strip().lower()
        if ":" in word:
            levels += _decade_range(word)
        elif word:
            levels.append(parse_compression(word))
    if not levels:
        raise NetgraphError("no compression levels given")
    out = sorted(set(levels))
    labels = [f"{c:.4g}" for c in out]
    if len(set(labels)) != len(labels):
        raise NetgraphError(f"compression levels too close to tell apart: {', '.join(labels)}")
    return out


def _decade_range(word: str) -> list[float]:
    parts = word.split(":")
    if len(parts) != 3 or not (parts[0].startswith("10^") and parts[1].startswith("10^")):
        raise NetgraphError(f"level range {word} must be 10^start:10^stop:step (decades), e.g. 10^0.5:10^3:0.5")
    try:
        start, stop, step = float(parts[0][3:]), float(parts[1][3:]), float(parts[2])
    except ValueError:
        raise NetgraphError(f"cannot read level range {word}: write 10^start:10^stop:step") from None
    if not step > 0 or not start >= 0:
        raise NetgraphError(f"level range {word} needs start >= 0 and step > 0")
    count = int(math.floor((stop - start) / step + 1e-9)) + 1
    return [float(10 ** round(start + i * step, 9)) for i in range(max(count, 0))]
