"""How long does `netgraph analyze` take next to one SynFlow scoring pass?

Claim (README): analysing ResNet-50 at 3x224x224 with the model already in memory
(trace + channel graph + connectivity + report) costs at most half of one SynFlow
scoring pass (forward + backward of |W| on an all-ones input, float64 as SynFlow
prescribes; float32 is reported as a second, cheaper baseline).

Method. Every measurement runs in a fresh subprocess that builds the model
(random init, seed 0), runs the operation once as a warm-up (whose peak-RSS growth
over the process's peak before it, from ``resource.getrusage``, is the operation's
peak memory: torch allocations are invisible to tracemalloc), then once timed
(wall clock and process CPU time). Repetitions are interleaved (the order of the
three kinds rotates every repetition) so that the noise of a shared machine hits
all of them alike; the table gives medians. Each ratio is the median of the
per-repetition ratios (analyze / SynFlow of the same repetition).

Run: ``python analysis/bench_analyze.py [--quick] [--threads 1 2] [--json out.json]``.
``--threads`` sets ``torch.set_num_threads`` in the workers (both sides alike);
on a loaded 2-core machine two OpenMP threads can be far slower than one, so the
default measures both.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

KINDS = ("analyze", "synflow64", "synflow32")
LABELS = {
    "analyze": "netgraph analyze (trace + graph + connectivity + report)",
    "synflow64": "SynFlow scoring pass, float64",
    "synflow32": "SynFlow scoring pass, float32",
}
INPUT_SHAPE = (3, 224, 224)


# ------------------------------------------------------------------ worker side


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _build_model():  # type: ignore[no-untyped-def]
    import torch
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet50(weights=None)


def _operation(kind: str, model):  # type: ignore[no-untyped-def]
    """The measured callable: everything it does counts."""
    import torch

    if kind == "analyze":
        from netgraph.connectivity.report import analyze
        from netgraph.graph.tracer import trace

        def run():  # type: ignore[no-untyped-def]
            return analyze(trace(model, input_shape=INPUT_SHAPE))

        return run

    from netgraph.parameters import prunable_parameters
    from netgraph.pruning.scores import ScoreContext, synflow

    params = prunable_parameters(model)
    ctx = ScoreContext(device=torch.device("cpu"), input_shape=INPUT_SHAPE)
    if kind == "synflow64":
        return lambda: synflow(model, params, ctx)  # the library's pass (float64)
    if kind == "synflow32":
        return lambda: synflow_pass(model, params, torch.float32)
    raise ValueError(kind)


def synflow_pass(model, params, dtype):  # type: ignore[no-untyped-def]
    """Minimal SynFlow scoring pass in ``dtype``: the library's
    :func:`netgraph.pruning.scores.synflow` with the float64 cast replaced."""
    from itertools import chain

    import torch
    from torch.func import functional_call

    from netgraph.modes import eval_mode

    state = {
        name: t.detach().abs().to(dtype) if t.is_floating_point() else t
        for name, t in chain(model.named_parameters(), model.named_buffers())
    }
    names = {id(p): name for name, p in model.named_parameters()}
    positive = [state[names[id(module.get_parameter(name))]].requires_grad_() for module, name in params]
    ones = torch.ones((1, *INPUT_SHAPE), dtype=dtype)
    with torch.enable_grad(), eval_mode(model):
        output = functional_call(model, state, (ones,))
        grads = torch.autograd.grad(output.sum(), positive)
    return [(g * w).detach().abs() for g, w in zip(grads, positive)]


def worker(kind: str, threads: int | None) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    model = _build_model()
    run = _operation(kind, model)
    before = _max_rss_mib()
    wall, cpu = time.perf_counter(), time.process_time()
    run()  # warm-up (first call: lazy imports, allocator growth); gives the peak memory
    cold = time.perf_counter() - wall
    peak = _max_rss_mib() - before
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"kind": kind, "threads": torch.get_num_threads(), "wall": wall, "cpu": cpu, "cold": cold, "peak_mib": peak}


# ------------------------------------------------------------------ driver side


def measure(kind: str, threads: int | None) -> dict:
    command = [sys.executable, __file__, "--worker", kind]
    if threads:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker {kind} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_setting(threads: int | None, reps: int) -> dict:
    runs: dict[str, list[dict]] = {k: [] for k in KINDS}
    for rep in range(reps):
        order = KINDS[rep % len(KINDS):] + KINDS[: rep % len(KINDS)]
        for kind in order:
            runs[kind].append(measure(kind, threads))
        line = "  ".join(f"{k} {runs[k][-1]['wall']:.2f}s" for k in KINDS)
        print(f"  threads={threads or 'default'} rep {rep + 1}/{reps}: {line}", flush=True)
    med = {k: {f: statistics.median(r[f] for r in runs[k]) for f in ("wall", "cpu", "cold", "peak_mib")} for k in KINDS}
    ratios = {
        base: {
            f: statistics.median(a[f] / b[f] for a, b in zip(runs["analyze"], runs[base]))
            for f in ("wall", "cpu")
        }
        for base in ("synflow64", "synflow32")
    }
    return {"threads": runs["analyze"][0]["threads"], "reps": reps, "median": med, "ratio": ratios, "runs": runs}


def table(results: list[dict]) -> str:
    lines = [
        "| torch threads | measurement | wall time (median) | CPU time | peak RSS growth | analyze / this |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for res in results:
        for kind in KINDS:
            med = res["median"][kind]
            ratio = "" if kind == "analyze" else f"**{res['ratio'][kind]['wall']:.2f}** (CPU {res['ratio'][kind]['cpu']:.2f})"
            lines.append(
                f"| {res['threads']} | {LABELS[kind]} | {med['wall']:.2f} s | {med['cpu']:.2f} s | "
                f"{med['peak_mib']:.0f} MiB | {ratio} |"
            )
    reps = ", ".join(str(r["reps"]) for r in results)
    lines.append("")
    lines.append(
        f"ResNet-50, input 1x3x224x224, model in memory, CPU; medians of {reps} interleaved repetitions "
        "after a warm-up, a fresh process per measurement; target analyze / SynFlow(float64) <= 0.5."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repetitions instead of 5")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5, 2 with --quick)")
    parser.add_argument("--threads", type=int, nargs="*", default=None, help="torch threads to measure (default: 1 2)")
    parser.add_argument("--json", type=Path, default=None, help="write every measurement here")
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.threads[0] if args.threads else None)))
        return
    reps = args.reps or (2 if args.quick else 5)
    settings = args.threads if args.threads else [1, os.cpu_count() or 2]
    results = []
    for threads in settings:
        results.append(run_setting(threads, reps))
    print()
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
