"""Shared helpers of the analysis scripts: resumable units of work, result tables, figures.

Every script splits its experiment into *units* (one training run, one pruning
trajectory, ...). A unit's result is one JSON file written atomically
(:func:`netgraph.atomic.atomic_write_json`) under ``<out>/runs/``; re-running a
script loads finished units instead of recomputing them, so an interrupted run
resumes where it stopped. Delete a unit's JSON (or the whole ``--out``) to redo it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from netgraph.atomic import atomic_write, atomic_write_json, atomic_write_text

REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "figures"


# --- units of work -------------------------------------------------------------------


def unit_path(out: Path, *key: Any) -> Path:
    """``<out>/runs/<key parts joined by __>.json``, with file-system-safe parts."""
    parts = [re.sub(r"[^A-Za-z0-9._=+-]", "_", str(k)) for k in key]
    return Path(out) / "runs" / ("__".join(parts) + ".json")


def run_unit(out: Path, key: Sequence[Any], compute: Callable[[], Any], log: bool = True) -> Any:
    """The stored result of unit ``key`` if it finished before, else ``compute()``
    (stored atomically before it is returned)."""
    path = unit_path(out, *key)
    if path.exists():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:  # cannot happen with atomic writes, but never trust a file
            print(f"[redo] unreadable {path}", file=sys.stderr)
    started = time.perf_counter()
    result = compute()
    atomic_write_json(path, _jsonable(result))
    if log:
        print(f"[done] {'/'.join(map(str, key))} in {time.perf_counter() - started:.1f}s", flush=True)
    return json.loads(path.read_text())


def _jsonable(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (JSON has no inf/nan)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _jsonable(value.item())
    return value


# --- tables --------------------------------------------------------------------------


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_table(out: Path, name: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                md_rows: Sequence[Mapping[str, Any]] | None = None, md_columns: Sequence[str] | None = None) -> str:
    """Write ``<out>/<name>.csv`` (raw values) and ``<out>/<name>.md`` (formatted);
    return the markdown."""
    columns = list(columns or (rows[0].keys() if rows else []))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _csv_value(row.get(c)) for c in columns})
    atomic_write_text(Path(out) / f"{name}.csv", buffer.getvalue())
    md = markdown_table(md_rows if md_rows is not None else rows, md_columns or columns)
    atomic_write_text(Path(out) / f"{name}.md", md)
    return md


def _csv_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ";".join(map(str, value))
    return "" if value is None else value


def mean_std(values: Iterable[float | None]) -> tuple[float, float, int]:
    """Mean, sample std (0 for one value) and count of the finite values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return math.nan, math.nan, 0
    return statistics.fmean(finite), (statistics.stdev(finite) if len(finite) > 1 else 0.0), len(finite)


def pm(values: Iterable[float | None], scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` (of ``scale * value``), or ``–`` when there is none."""
    mean, std, n = mean_std(values)
    if n == 0:
        return "–"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


# --- figures -------------------------------------------------------------------------


def new_figure(width: float, height: float):
    """An Agg-rendered matplotlib Figure (no pyplot state), in the project's style."""
    try:
        from netgraph.plots.style import new_figure as project_figure

        return project_figure(width, height)
    except Exception:  # noqa: BLE001 - the plotting package is being written: fall back
        from matplotlib.figure import Figure

        return Figure(figsize=(width, height), dpi=150, layout="constrained")


def style(method: str) -> tuple[str | None, str]:
    """(colour, marker) of a method, shared with ``netgraph.plots`` when available."""
    try:
        from netgraph.plots.style import method_color, method_marker

        return method_color(method), method_marker(method)
    except Exception:  # noqa: BLE001
        return None, "o"


def style_context():
    try:
        from netgraph.plots.style import mpl_style

        return mpl_style()
    except Exception:  # noqa: BLE001
        import contextlib

        return contextlib.nullcontext()


def save_figure(fig, out: Path, name: str, copy_to_figures: bool) -> list[Path]:
    """Write ``<out>/<name>.png`` and, for full (non-quick) runs, ``figures/<name>.png``."""
    path = Path(out) / f"{name}.png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    written = [path]
    if copy_to_figures:
        FIGURES.mkdir(exist_ok=True)
        target = FIGURES / f"{name}.png"
        atomic_write(target, lambda tmp: shutil.copyfile(path, tmp))
        written.append(target)
    for written_path in written:
        written_path.chmod(0o644)  # atomic_write's temporary file is private (0600)
    return written


def limit_threads(threads: int) -> None:
    """Keep torch (and BLAS) to ``threads`` threads: the machine is shared."""
    import torch

    torch.set_num_threads(max(1, threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __str__(self) -> str:
        seconds = time.perf_counter() - self.start
        return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"
