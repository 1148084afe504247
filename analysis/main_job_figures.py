"""Regenerate the README's main-job figures: `netgraph compare` with its defaults
(LeNet-300-100 on mnist5k, every method, both protocols), then copy the PNGs into
figures/ and print the summary.

Run: python analysis/main_job_figures.py [--out results/main_job]   (about 1-2 min on 2 cores)
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


def run(out: Path) -> int:
    start = time.perf_counter()
    code = main(["compare", "--out", str(out)])
    print(f"netgraph compare: exit {code}, {time.perf_counter() - start:.0f} s wall")
    if code != 0:
        return code
    for name in FIGURES:
        source = out / "figures" / f"{name}.png"
        if source.exists():
            shutil.copyfile(source, ROOT / "figures" / f"main_{name}.png")
    print((out / "summary.md").read_text())
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "main_job")
    sys.exit(run(parser.parse_args().out))
