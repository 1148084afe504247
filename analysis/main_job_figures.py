"""Regenerate the README's main-job figures: `netgraph compare` with its defaults
(LeNet-300-100 on mnist5k, every method, both protocols), then `netgraph plot` on
one of its checkpoints, and copy the PNGs into figures/.

Run: OMP_NUM_THREADS=1 python analysis/main_job_figures.py --out /tmp/main_job
(about 3 min alone on 2 cores; a finished --out is resumed and only redrawn).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from netgraph.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("accuracy_vs_compression", "effective_vs_nominal", "log_phi_vs_compression",
           "layer_density_init", "surviving_paths_init_magnitude", "surviving_paths_init_connect")
#: The checkpoint `netgraph plot` draws (saved by compare for the path figures).
PLOTTED = "init-connect-c1000-s0"


def run(out: Path) -> int:
    start = time.perf_counter()
    code = main(["compare", "--out", str(out)])
    print(f"netgraph compare: exit {code}, {time.perf_counter() - start:.0f} s wall")
    if code != 0:
        return code
    start = time.perf_counter()
    code = main(["plot", str(out / "runs" / PLOTTED / "model.pt"), "--out", str(out / "plot"),
                 "--plotlyjs", str(out / "figures" / "plotly.min.js")])  # one plotly.js for the whole tree
    print(f"netgraph plot: exit {code}, {time.perf_counter() - start:.0f} s wall")
    if code != 0:
        return code
    copies = [(out / "figures" / f"{name}.png", f"main_{name}.png") for name in FIGURES]
    copies += [(out / "plot" / f"model_{part}.png", f"main_plot_{PLOTTED}_{part}.png") for part in ("layers", "pixels")]
    for source, target in copies:
        if not source.exists():
            print(f"missing {source}", file=sys.stderr)
            return 1
        shutil.copyfile(source, ROOT / "figures" / target)
    print((out / "summary.md").read_text())
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "main_job")
    sys.exit(run(parser.parse_args().out))
