"""Result tables: CSV and markdown files, mean ± std, paired same-seed differences.

Rows are plain dicts (one per run or unit). A CSV keeps raw values (None as an
empty cell, lists as JSON) for a reader's own analysis; markdown is what a person
reads. Spreads are over seeds; arms are compared seed by seed
(:func:`paired_differences`), because the seed-to-seed spread of a small net's
accuracy is often larger than the difference between two methods, while the
same-seed difference cancels what both arms share (initialisation, batch order).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netgraph.atomic import atomic_write_text
from netgraph.errors import NetgraphError

__all__ = [
    "PairedDifference",
    "csv_text",
    "fmt",
    "markdown_table",
    "mean_std",
    "paired_differences",
    "pm",
    "write_table",
]


# --- files ---------------------------------------------------------------------------------


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return value


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as CSV with the header ``columns`` (other keys are left out, a missing
    one is an empty cell, None too; lists are JSON; ``\\n`` line ends)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_value(row.get(c)) for c in columns})
    return buffer.getvalue()


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A markdown table of ``rows`` (cells as ``str``, a missing one empty), without
    a final newline; ``columns`` default to the first row's keys."""
    columns = list(columns if columns is not None else (rows[0] if rows else []))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_table(out: str | os.PathLike, name: str, rows: Sequence[Mapping[str, Any]],
                columns: Sequence[str] | None = None, md_rows: Sequence[Mapping[str, Any]] | None = None,
                md_columns: Sequence[str] | None = None) -> str:
    """Write ``<out>/<name>.csv`` (the raw ``rows``) and ``<out>/<name>.md`` (``md_rows``,
    formatted for reading; default the raw rows); return the markdown."""
    columns = list(columns or (rows[0].keys() if rows else []))
    atomic_write_text(Path(out) / f"{name}.csv", csv_text(rows, columns))
    md = markdown_table(md_rows if md_rows is not None else rows, md_columns or columns) + "\n"
    atomic_write_text(Path(out) / f"{name}.md", md)
    return md


# --- numbers ---------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: ``digits`` significant digits, ``–`` for None, yes/no for booleans."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
        return f"{value:.{digits}g}"
    return str(value)


def _finite(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_std(values: Iterable[float | None]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (0 for one value) and count of the finite
    values (None, inf and nan are left out: a disconnected run has no log phi);
    ``(nan, nan, 0)`` when there is none."""
    finite = _finite(values)
    if not finite:
        return math.nan, math.nan, 0
    return statistics.fmean(finite), (statistics.stdev(finite) if len(finite) > 1 else 0.0), len(finite)


def pm(values: Iterable[float | None], scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` of ``scale * value`` (percent by default), or ``–`` when there is none."""
    mean, std, n = mean_std(values)
    if n == 0:
        return "–"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


# --- paired differences ----------------------------------------------------------------------


@dataclass(frozen=True)
class PairedDifference:
    """``arm_a - arm_b`` of one value, pair by pair (see :func:`paired_differences`).

    ``differences`` maps each pairing value (seed) both arms have a finite value for
    to the difference; ``unpaired`` lists the pairing values that lack one.
    """

    differences: dict[Any, float]
    unpaired: list[Any]

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def mean(self) -> float:
        """Mean difference (nan without pairs)."""
        return statistics.fmean(self.differences.values()) if self.differences else math.nan

    @property
    def std(self) -> float:
        """Sample standard deviation of the differences (nan below two pairs: one
        pair says nothing about the spread)."""
        return statistics.stdev(self.differences.values()) if self.n > 1 else math.nan

    @property
    def sem(self) -> float:
        """Standard error of the mean difference, ``std / sqrt(n)``."""
        return self.std / math.sqrt(self.n) if self.n > 1 else math.nan

    def text(self, scale: float = 100.0, digits: int = 1) -> str:
        """``+1.2 ± 0.4 (s.e., n=3)`` of ``scale * difference`` (percentage points by default)."""
        if self.n == 0:
            return "–"
        if self.n == 1:
            return f"{scale * self.mean:+.{digits}f} (n=1, no s.e.)"
        return f"{scale * self.mean:+.{digits}f} ± {scale * self.sem:.{digits}f} (s.e., n={self.n})"


def _arm_values(rows: Sequence[Mapping[str, Any]], key: str, arm: Mapping[str, Any], by: str) -> dict[Any, Any]:
    chosen = [row for row in rows if all(row.get(column) == value for column, value in arm.items())]
    if not chosen:
        raise NetgraphError(f"arm {dict(arm)} matches no row")
    values: dict[Any, Any] = {}
    for row in chosen:
        if by not in row:
            raise NetgraphError(f"a row of arm {dict(arm)} has no pairing column {by!r}")
        if row[by] in values:
            raise NetgraphError(f"arm {dict(arm)} has several rows with {by} {row[by]!r}: "
                                "add the columns that tell them apart to the arm")
        values[row[by]] = row.get(key)
    return values


def paired_differences(rows: Sequence[Mapping[str, Any]], key: str, arm_a: Mapping[str, Any],
                       arm_b: Mapping[str, Any], by: str = "seed") -> PairedDifference:
    """The differences ``arm_a - arm_b`` of ``key``, paired by the value of ``by``.

    An arm is a mapping column -> value that selects its rows, e.g.
    ``{"method": "magnitude+l1+connect", "target_compression": 100.0}``; within an arm
    each value of ``by`` must occur once. A pair whose value is missing or not
    finite in either arm is counted in ``unpaired``, not guessed.

    Examples
    --------
    >>> rows = [{"method": m, "seed": s, "acc": a} for m, s, a in
    ...         [("a", 0, 0.90), ("a", 1, 0.80), ("b", 0, 0.85), ("b", 1, 0.70)]]
    >>> d = paired_differences(rows, "acc", {"method": "a"}, {"method": "b"})
    >>> round(d.mean, 3), d.n
    (0.075, 2)
    """
    if not any(key in row for row in rows):
        raise NetgraphError(f"no row has the column {key!r}")
    a, b = _arm_values(rows, key, arm_a, by), _arm_values(rows, key, arm_b, by)
    differences, unpaired = {}, []
    for pair in [*a, *(v for v in b if v not in a)]:
        pair_values = _finite([a.get(pair), b.get(pair)])
        if pair in a and pair in b and len(pair_values) == 2:
            differences[pair] = pair_values[0] - pair_values[1]
        else:
            unpaired.append(pair)
    return PairedDifference(differences, unpaired)
