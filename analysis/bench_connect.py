"""What does CoNNect cost next to the work it rides on?

Two claims (README), measured in one run:

(a) CoNNect as a regularizer: one ``reg().backward()`` of
    ``CoNNect(resnet20, input_shape=(3, 32, 32))`` costs at most 3% of one
    training step (forward + backward + SGD step) of CIFAR ResNet-20 at batch 128.
(b) CoNNect as an iterated pruning score: 100 rounds of
    ``METHODS['connect'].prune`` on CIFAR VGG-16 (compression 100x) cost at most
    0.2x SynFlow's 100 rounds (``METHODS['synflow']``) on the same model and target.
    CoNNect prunes with its own loop (only the unpruned weights are re-scored and
    ranked each round); the same score through the plain loop that re-scores every
    weight (``iterate_scores``, which SynFlow uses) is timed too, to show what the
    loop buys. Both CoNNect runs end with the same masks (checked).

Method. (a) runs in one process: a warm-up, then training steps and CoNNect passes
alternate, and the table gives medians (the ratio is the median of per-pair ratios,
each pass against the step next to it). (b) builds a fresh model (seed 0) for every
run and rotates which variant goes first, after a short warm-up of each.
Inputs are random (the costs do not depend on the data). ``--threads`` sets
``torch.set_num_threads`` for everything measured (both sides alike; the CoNNect loop
itself runs on one thread whatever it is set to): on a loaded 2-core machine two
OpenMP threads can be far slower than one. The (b) results come once more side by
side per thread count, with the ratio in CPU seconds too (less sensitive to other
processes) and the load average seen while measuring.

Run: ``python analysis/bench_connect.py [--quick] [--threads 1 2] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from netgraph.connect.regularizer import CoNNect
from netgraph.pruning import METHODS, prunable_parameters
from netgraph.training.models import build_model

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


VARIANTS = ("connect", "connect-plain-loop", "synflow")


def prune_run(variant: str, rounds: int, compression: float) -> tuple[float, float, list[torch.Tensor]]:
    """One full iterated pruning of a fresh VGG-16: seconds, CPU seconds of the process
    (all threads; on a shared machine less sensitive to the others' load) and final masks."""
    torch.manual_seed(0)
    model = build_model("vgg16_bn_cifar")
    params = prunable_parameters(model)
    method = METHODS[variant.removesuffix("-plain-loop")]
    if variant.endswith("-plain-loop"):
        method = dataclasses.replace(method, iterate=None)
    start, cpu = time.perf_counter(), time.process_time()
    masks = method.prune(model, params, compression=compression, input_shape=INPUT_SHAPE, iterations=rounds)
    return time.perf_counter() - start, time.process_time() - cpu, masks


def bench_pruning(reps: int, rounds: int, compression: float) -> dict:
    for name in VARIANTS:  # warm-up: imports, first trace, allocator
        prune_run(name, 2, compression)
    runs: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    same_masks = True
    for rep in range(reps):
        masks = {}
        for name in VARIANTS[rep % 3 :] + VARIANTS[: rep % 3]:
            seconds, cpu_seconds, masks[name] = prune_run(name, rounds, compression)
            runs[name].append(seconds)
            cpu[name].append(cpu_seconds)
        same_masks &= all(torch.equal(a, b) for a, b in zip(masks["connect"], masks["connect-plain-loop"]))
        print(f"    rep {rep + 1}/{reps}: " + "  ".join(f"{n} {runs[n][-1]:.1f}s (cpu {cpu[n][-1]:.1f}s)" for n in VARIANTS), flush=True)
    return {
        "rounds": rounds,
        "compression": compression,
        "reps": reps,
        "median": {n: statistics.median(runs[n]) for n in VARIANTS},
        "ratio": statistics.median(c / s for c, s in zip(runs["connect"], runs["synflow"])),
        "ratio_plain_loop": statistics.median(c / s for c, s in zip(runs["connect-plain-loop"], runs["synflow"])),
        "same_masks": same_masks,
        "runs": runs,
        "cpu": cpu,
        "cpu_ratio": statistics.median(c / s for c, s in zip(cpu["connect"], cpu["synflow"])),
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
        med = b["median"]
        lines.append(
            f"| {t} | (b) {b['rounds']} rounds to {b['compression']:g}x, VGG-16 (CIFAR), CoNNect vs SynFlow | "
            f"{med['connect']:.1f} s | {med['synflow']:.1f} s | **{b['ratio']:.2f}x** | <= 0.2x |"
        )
        lines.append(
            f"| {t} | (b) same, CoNNect through the plain loop (re-scores every weight each round) | "
            f"{med['connect-plain-loop']:.1f} s | {med['synflow']:.1f} s | {b['ratio_plain_loop']:.2f}x | |"
        )
    lines += ["", side_by_side(results)]
    first = results[0]
    lines.append("")
    lines.append(
        f"CPU; (a) medians of {first['regularizer']['n']} alternating pairs after a warm-up "
        f"(building the CoNNect graph once: {first['regularizer']['build']:.2f} s, not counted); "
        f"(b) medians of {first['pruning']['reps']} rotating full runs after a warm-up, "
        "a fresh seed-0 model per run; baseline is SynFlow for (b); both CoNNect loops gave "
        f"{'the same' if all(r['pruning']['same_masks'] for r in results) else 'DIFFERENT'} masks. "
        "Load average (1 min) while measuring: "
        + ", ".join(f"{r['load'][0]:.1f}-{r['load'][1]:.1f} at {r['threads']} thread(s)" for r in results)
        + f" on {os.cpu_count()} cores."
    )
    return "\n".join(lines)


def side_by_side(results: list[dict]) -> str:
    """(b) at every thread count next to each other: seconds, and ratios to SynFlow."""
    head = " | ".join(f"{r['threads']} thread{'s' if r['threads'] > 1 else ''}" for r in results)
    b = results[0]["pruning"]
    lines = [f"| (b) {b['rounds']} rounds to {b['compression']:g}x, VGG-16 | {head} |", "| --- |" + " ---: |" * len(results)]
    for label, key in (("CoNNect loop", "connect"), ("CoNNect, plain loop", "connect-plain-loop"), ("SynFlow", "synflow")):
        lines.append(f"| {label} (s) | " + " | ".join(f"{r['pruning']['median'][key]:.1f}" for r in results) + " |")
    lines.append("| CoNNect loop / SynFlow | " + " | ".join(f"**{r['pruning']['ratio']:.2f}x**" for r in results) + " |")
    lines.append("| same in CPU seconds | " + " | ".join(f"{r['pruning']['cpu_ratio']:.2f}x" for r in results) + " |")
    lines.append("| plain loop / SynFlow | " + " | ".join(f"{r['pruning']['ratio_plain_loop']:.2f}x" for r in results) + " |")
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
        load_before = os.getloadavg()[0]
        print(f"threads={threads}: (a) regularizer vs training step", flush=True)
        regularizer = bench_regularizer(steps)
        print(f"    step {regularizer['step'] * 1e3:.0f} ms, CoNNect {regularizer['connect'] * 1e3:.1f} ms", flush=True)
        print(f"threads={threads}: (b) {args.rounds}-round pruning, connect vs synflow", flush=True)
        pruning = bench_pruning(reps, args.rounds, args.compression)
        results.append(
            {"threads": threads, "regularizer": regularizer, "pruning": pruning, "load": (load_before, os.getloadavg()[0])}
        )
    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
