"""What does CoNNect cost next to the work it rides on?

Two claims (README), measured in one run:

(a) CoNNect as a regularizer: one ``reg().backward()`` of
    ``CoNNect(resnet20, input_shape=(3, 32, 32))`` costs at most 3% of one
    training step (forward + backward + SGD step) of CIFAR ResNet-20 at batch 128.
(b) CoNNect as an iterated pruning score: 100 rounds of
    ``METHODS['connect'].prune`` on CIFAR VGG-16 (compression 100x) cost at most
    0.2x SynFlow's 100 rounds (``METHODS['synflow']``) on the same model and target.
    Both methods share the mask selection of every round (``select_mask`` +
    ``apply_masks``), so the scoring-only ratio (time spent inside the score
    function) is reported too.

Method. (a) runs in one process: a warm-up, then training steps and CoNNect passes
alternate, and the table gives medians (the ratio is the median of per-pair ratios,
each pass against the step next to it). (b) builds a fresh model (seed 0) for every
run and alternates which method goes first, after a short warm-up of both; the score
function is wrapped with a timer, so one run gives its total and its scoring time.
Inputs are random (the costs do not depend on the data). ``--threads`` sets
``torch.set_num_threads`` for everything measured (both sides alike): on a loaded
2-core machine two OpenMP threads can be far slower than one.

Run: ``python analysis/bench_connect.py [--quick] [--threads 1 2] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from netgraph.connect import CoNNect
from netgraph.models import build_model
from netgraph.pruning import METHODS, prunable_parameters

INPUT_SHAPE = (3, 32, 32)


# ------------------------------------------------------------------ (a) regularizer vs training step


def bench_regularizer(steps: int, batch: int = 128) -> dict:
    torch.manual_seed(0)
    model = build_model("resnet20")
    model.train()
    start = time.perf_counter()
    reg = CoNNect(model, input_shape=INPUT_SHAPE)
    build = time.perf_counter() - start
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    inputs = torch.randn(batch, *INPUT_SHAPE)
    targets = torch.randint(0, 10, (batch,))

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), targets).backward()
        optimizer.step()

    def connect_pass() -> None:
        reg().backward()

    for _ in range(3):  # warm-up
        train_step()
        connect_pass()
    step_times, reg_times = [], []
    for i in range(steps):
        pair = (train_step, connect_pass) if i % 2 == 0 else (connect_pass, train_step)
        for fn in pair:
            start = time.perf_counter()
            fn()
            (step_times if fn is train_step else reg_times).append(time.perf_counter() - start)
    return {
        "build": build,
        "step": statistics.median(step_times),
        "connect": statistics.median(reg_times),
        "ratio": statistics.median(r / s for r, s in zip(reg_times, step_times)),
        "n": steps,
    }


# ------------------------------------------------------------------ (b) iterated pruning scores


def prune_run(method_name: str, rounds: int, compression: float) -> dict:
    """One full iterated pruning of a fresh VGG-16; total time and time inside the score."""
    torch.manual_seed(0)
    model = build_model("vgg16_bn_cifar")
    params = prunable_parameters(model)
    method = METHODS[method_name]
    spent = [0.0]

    def timed_score(*args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        try:
            return method.score(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start

    timed = dataclasses.replace(method, score=timed_score)
    start = time.perf_counter()
    masks = timed.prune(model, params, compression=compression, input_shape=INPUT_SHAPE, iterations=rounds)
    total = time.perf_counter() - start
    kept = sum(int(m.sum()) for m in masks)
    return {"total": total, "score": spent[0], "select": total - spent[0], "kept": kept}


def bench_pruning(reps: int, rounds: int, compression: float) -> dict:
    for name in ("connect", "synflow"):  # warm-up: imports, first trace, allocator
        prune_run(name, 2, compression)
    runs: dict[str, list[dict]] = {"connect": [], "synflow": []}
    for rep in range(reps):
        order = ("connect", "synflow") if rep % 2 == 0 else ("synflow", "connect")
        for name in order:
            runs[name].append(prune_run(name, rounds, compression))
        print(
            f"    rep {rep + 1}/{reps}: "
            + "  ".join(f"{n} {runs[n][-1]['total']:.1f}s (score {runs[n][-1]['score']:.1f}s)" for n in runs),
            flush=True,
        )
    med = {n: {f: statistics.median(r[f] for r in runs[n]) for f in ("total", "score", "select")} for n in runs}
    pairs = list(zip(runs["connect"], runs["synflow"]))
    return {
        "rounds": rounds,
        "compression": compression,
        "reps": reps,
        "median": med,
        "ratio_total": statistics.median(c["total"] / s["total"] for c, s in pairs),
        "ratio_score": statistics.median(c["score"] / s["score"] for c, s in pairs),
        "kept": {n: runs[n][0]["kept"] for n in runs},
        "runs": runs,
    }


# ------------------------------------------------------------------ report


def table(results: list[dict]) -> str:
    lines = [
        "| torch threads | comparison | CoNNect | baseline | ratio | target |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for res in results:
        t = res["threads"]
        a = res["regularizer"]
        lines.append(
            f"| {t} | (a) `reg().backward()` vs one training step, ResNet-20, batch 128 | "
            f"{a['connect'] * 1e3:.1f} ms | {a['step'] * 1e3:.0f} ms | **{a['ratio']:.2%}** | <= 3% |"
        )
        b = res["pruning"]
        c, s = b["median"]["connect"], b["median"]["synflow"]
        lines.append(
            f"| {t} | (b) {b['rounds']} rounds to {b['compression']:g}x, VGG-16 (CIFAR): total | "
            f"{c['total']:.1f} s | {s['total']:.1f} s | **{b['ratio_total']:.2f}x** | <= 0.2x |"
        )
        lines.append(
            f"| {t} | (b) same runs, scoring only (inside the score function) | "
            f"{c['score']:.1f} s | {s['score']:.1f} s | **{b['ratio_score']:.2f}x** | <= 0.2x |"
        )
        lines.append(
            f"| {t} | (b) same runs, shared mask selection + masking | "
            f"{c['select']:.1f} s | {s['select']:.1f} s | | |"
        )
    first = results[0]
    lines.append("")
    lines.append(
        f"CPU; (a) medians of {first['regularizer']['n']} alternating pairs after a warm-up "
        f"(building the CoNNect graph once: {first['regularizer']['build']:.2f} s, not counted); "
        f"(b) medians of {first['pruning']['reps']} alternating full runs after a warm-up, "
        "a fresh seed-0 model per run; baseline is SynFlow for (b)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: 10 pairs for (a), 1 run each for (b)")
    parser.add_argument("--threads", type=int, nargs="*", default=None, help="torch threads to measure (default: 1 2)")
    parser.add_argument("--rounds", type=int, default=100, help="pruning rounds in (b) (default 100)")
    parser.add_argument("--compression", type=float, default=100.0, help="compression target in (b) (default 100)")
    parser.add_argument("--reps", type=int, default=None, help="full runs per method in (b) (default 3, 1 with --quick)")
    parser.add_argument("--json", type=Path, default=None, help="write every measurement here")
    args = parser.parse_args()
    steps = 10 if args.quick else 30
    reps = args.reps or (1 if args.quick else 3)
    results = []
    for threads in args.threads or [1, 2]:
        torch.set_num_threads(threads)
        print(f"threads={threads}: (a) regularizer vs training step", flush=True)
        regularizer = bench_regularizer(steps)
        print(f"    step {regularizer['step'] * 1e3:.0f} ms, CoNNect {regularizer['connect'] * 1e3:.1f} ms", flush=True)
        print(f"threads={threads}: (b) {args.rounds}-round pruning, connect vs synflow", flush=True)
        pruning = bench_pruning(reps, args.rounds, args.compression)
        results.append({"threads": threads, "regularizer": regularizer, "pruning": pruning})
    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
