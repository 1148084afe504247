"""What the analysis scripts share beyond the package: figures, threads, wall time.

Resumable units of work (``run_unit``) and result tables (``write_table``,
``mean_std``, ``pm``, ``paired_differences``) are the package's experiment engine,
:mod:`netgraph.experiments.store` and :mod:`netgraph.experiments.tables`: a
script's units live in ``<out>/runs/<key>.json`` and re-running it loads the
finished ones instead of recomputing them. Delete a unit's JSON (or the whole
``--out``) to redo it.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from netgraph.atomic import atomic_write
from netgraph.plots.style import method_color, method_marker

logging.basicConfig(level=logging.INFO, format="%(message)s")  # the package's progress notes, on stderr

REPO = Path(__file__).resolve().parent.parent
FIGURES = REPO / "figures"


# --- figures -------------------------------------------------------------------------


def style(method: str) -> tuple[str, str]:
    """(colour, marker) of a method, the same as in ``netgraph.plots``."""
    return method_color(method), method_marker(method)


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
    return written


def limit_threads(threads: int) -> None:
    """Keep torch (and BLAS) to ``threads`` threads: the machine is shared."""
    import torch

    torch.set_num_threads(max(1, threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


class Timer:
    """Wall time since it was made, as ``str()``: seconds, or minutes past two."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __str__(self) -> str:
        seconds = time.perf_counter() - self.start
        return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"
