"""What does a CoNNect importance cost in one DepGraph pruning step, next to magnitude?

Claim (README): one ``structural_prune`` step of torchvision ResNet-50 with
``importance="connect"`` costs a small multiple of the same step with magnitude
importance, because the channel graph's flows are computed once per step (they
used to be recomputed for every group: 37 ``flows()`` calls per step).

Method. Every measured step prunes a fresh copy of the same ResNet-50 (seed 0, 10
classes, input 3x224x224) by 30% of its channels, per layer. Each step is timed
whole (Torch-Pruning's tracing, the importances, the pruning; for CoNNect also the
channel-graph trace, which a fresh model needs). The variants alternate within each
repeat, the order rotating, after one warm-up of each; the table gives the median
seconds and the median of the per-repeat ratios against magnitude measured next to
it. ``per-group flows`` is the old behaviour (the cache disabled), for reference.
``--threads 1 2`` repeats everything with that many torch threads.

Run: ``OMP_NUM_THREADS=1 python analysis/bench_structured.py [--repeats 5] [--threads 1 2] [--out results/bench_structured]``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
import torchvision
from _common import limit_threads, write_table

from netgraph.pruning.importance import ConnectImportance
from netgraph.pruning.structured import make_importance, structural_prune

SHAPE = (3, 224, 224)


class _PerGroupFlows(ConnectImportance):
    """The old behaviour: the flows recomputed for every group."""

    def channel_map(self):  # type: ignore[no-untyped-def]
        self._cache = None
        return super().channel_map()


def _variants() -> dict:
    return {
        "magnitude": lambda m: make_importance("magnitude", m, SHAPE),
        "connect": lambda m: make_importance("connect", m, SHAPE),
        "magnitude+connect": lambda m: make_importance("magnitude+connect", m, SHAPE),
        "connect, per-group flows": lambda m: _PerGroupFlows(m, SHAPE),
    }


def _step(base: torch.nn.Module, factory) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    model = copy.deepcopy(base)
    importance = factory(model)
    example = torch.randn(1, *SHAPE)
    start = time.perf_counter()
    structural_prune(model, example, 0.3, importance)
    seconds = time.perf_counter() - start
    return seconds, getattr(importance, "flow_computations", 0)


def bench(threads: int, repeats: int) -> list[dict]:
    limit_threads(threads)
    torch.manual_seed(0)
    base = torchvision.models.resnet50(num_classes=10)
    variants = _variants()
    names = list(variants)
    for name in names:  # warm-up
        _step(base, variants[name])
    times: dict[str, list[float]] = {n: [] for n in names}
    flows_calls: dict[str, int] = {}
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            seconds, calls = _step(base, variants[name])
            times[name].append(seconds)
            flows_calls[name] = calls
        print(f"threads {threads} repeat {r + 1}/{repeats}: "
              + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in names), flush=True)
    rows = []
    for name in names:
        ratios = [t / m for t, m in zip(times[name], times["magnitude"])]
        rows.append({
            "threads": threads, "importance": name, "median_s": statistics.median(times[name]),
            "min_s": min(times[name]), "max_s": max(times[name]),
            "ratio_vs_magnitude": statistics.median(ratios), "flows_calls": flows_calls[name],
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path("results/bench_structured"))
    args = parser.parse_args()
    rows = [row for threads in args.threads for row in bench(threads, args.repeats)]
    md_rows = [{**row, **{k: f"{row[k]:.2f}" for k in ("median_s", "min_s", "max_s")},
                "ratio_vs_magnitude": f"{row['ratio_vs_magnitude']:.2f}x"} for row in rows]
    print(write_table(args.out, "bench_structured", rows, md_rows=md_rows))


if __name__ == "__main__":
    main()
