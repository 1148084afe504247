"""Short messages: every error netgraph reports is one line, every list is bounded."""

from __future__ import annotations

from collections.abc import Sequence


def first_line(message: object, fallback: str = "") -> str:
    """The first non-blank line of ``str(message)``, stripped; ``fallback`` when there is none.

    Examples
    --------
    >>> first_line("bad shape\\n  at layer 3")
    'bad shape'
    >>> first_line("", fallback="ValueError")
    'ValueError'
    """
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return lines[0] if lines else fallback


def error_line(error: BaseException) -> str:
    """An exception as one line: its message's first line, or its type's name if it has none."""
    return first_line(error, fallback=type(error).__name__)


def bounded_list(items: Sequence[str], limit: int = 8, sep: str = ", ") -> str:
    """``items`` joined, at most ``limit`` of them, then ``(+N more)``.

    Examples
    --------
    >>> bounded_list(["a", "b", "c"], limit=2)
    'a, b (+1 more)'
    """
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return sep.join(items[:limit]) + more
