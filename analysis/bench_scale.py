"""Streaming analysis at LLM scale: does `netgraph analyze --stream` stay near a plain read of the file?

Claim (README): analysing a LLaMA-architecture safetensors checkpoint (random bf16
weights at 50 % unstructured sparsity) with the model on the meta device and the
weights read one module at a time costs (a) at most 3x (b) the floor, one pass that
reads every tensor of the file and sums its absolute values, and peaks at most at
half the checkpoint's bytes of resident memory; both grow linearly or better with
the model.

Method. Missing checkpoints are written first (TinyLlama-1.1B shape and two smaller
ones; ``--big`` adds LLaMA-7B, not for CI). Every measurement is a fresh subprocess.
(a) times ``analyze_streaming`` alone (the trace included; interpreter start, imports
-- torch.export's lazy ones, networkx among them, imported up front -- and building the
meta model excluded); (b) times reading every tensor through the
same reader (views of a memory map of the file, pages released after use) and
summing its absolute values, with the same exclusions. Both also get the whole
process's wall time (start, imports, exit) and peak RSS, since at 125M those fixed
costs dominate. Peak RSS of the timed work is the kernel's peak mark (``VmHWM``,
reset through ``/proc/self/clear_refs`` when the work starts) minus the RSS then;
the process's peak is the larger of the marks before and after (Linux only). (a) and (b) alternate; medians and [min-max] over
repetitions, ratios per repetition; CPU seconds (user + sys) beside wall seconds,
since the machine may be shared. The OS page cache is warm for both (each file is
read once before timing). Linear fits over the sizes split each cost into a fixed
part and a per-GiB part.

Run: ``OMP_NUM_THREADS=1 python analysis/bench_scale.py --dir /tmp/scale [--sizes 125m 350m 1.1b] [--reps 3] [--threads 1 2] [--json rows.json]``.
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

SHAPES = {  # hidden, intermediate, layers, heads, kv heads (vocab 32000)
    "125m": (768, 2048, 12, 12, 12),
    "350m": (1024, 2816, 24, 16, 16),
    "1.1b": (2048, 5632, 22, 32, 4),
    "7b": (4096, 11008, 32, 32, 32),
}
SEQ = 16


def config(size: str):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig

    hidden, inter, layers, heads, kv = SHAPES[size]
    return LlamaConfig(vocab_size=32000, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=2048,
                       tie_word_embeddings=False)


def meta_model(size: str):  # type: ignore[no-untyped-def]
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        return LlamaForCausalLM(config(size)).eval()


def write(size: str, path: Path) -> None:
    """Random bf16 weights, half of each matrix zero (norm weights 1), tensor by tensor."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)
    state = {}
    for name, param in meta_model(size).state_dict().items():
        if param.dim() == 1:
            state[name] = torch.ones(param.shape, dtype=torch.bfloat16)
            continue
        value = torch.randn(param.shape, generator=generator, dtype=torch.float32).mul_(0.02)
        value.mul_(torch.rand(param.shape, generator=generator) < 0.5)
        state[name] = value.to(torch.bfloat16)
    save_file(state, str(path))


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith(f"{field}:"))


def _reset_peak() -> float:
    """Restart the kernel's peak-RSS mark (it survives fork and exec, so a child would
    report its parent's peak) and return the current RSS, MiB."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return _status_mib("VmRSS")


def _peak_mib() -> float:
    return _status_mib("VmHWM")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(kind: str, size: str, path: Path, threads: int) -> dict:
    """One measurement in this fresh process: the timed work's wall and CPU seconds and
    its peak RSS above the RSS it started from (interpreter, imports, meta model)."""
    _reset_peak()
    import torch

    torch.set_num_threads(threads)
    if kind == "floor":  # the same reader as (a): views of a memory map, pages released after use
        from netgraph.connectivity.streaming import _MappedTensors

        process_peak = _peak_mib()
        before, cpu, start = _reset_peak(), _cpu_s(), time.perf_counter()
        mapped, total = _MappedTensors(path), 0.0
        for key in mapped.entries:
            total += float(mapped.get(key).abs().float().sum())  # type: ignore[union-attr]
            mapped.release(key)
        mapped.close()
        return {"seconds": time.perf_counter() - start, "cpu_s": _cpu_s() - cpu, "peak_mib": _peak_mib() - before,
                "process_peak_mib": max(process_peak, _peak_mib()), "check": total}
    import networkx  # noqa: F401  (imports excluded: torch.export loads these lazily on a first trace)
    import torch.export  # noqa: F401

    import netgraph.connectivity.streaming as streaming

    model = meta_model(size)
    tokens = torch.zeros((1, SEQ), dtype=torch.long, device="meta")
    phases = {}
    trace_repeated = streaming.trace_repeated

    def timed_trace(*args, **kwargs):  # type: ignore[no-untyped-def]
        begin = time.perf_counter()
        graph = trace_repeated(*args, **kwargs)
        phases["trace_s"], phases["trace_peak_mib"] = time.perf_counter() - begin, _peak_mib() - before
        return graph

    streaming.trace_repeated = timed_trace
    process_peak = _peak_mib()
    before, cpu, start = _reset_peak(), _cpu_s(), time.perf_counter()
    report = streaming.analyze_streaming(model, path, example_input=(tokens,))
    return {"seconds": time.perf_counter() - start, "cpu_s": _cpu_s() - cpu, "peak_mib": _peak_mib() - before,
            "process_peak_mib": max(process_peak, _peak_mib()), **phases, "check": report.alive, "disconnected": report.disconnected,
            "parameters": report.parameters}


def measure(kind: str, size: str, path: Path, threads: int) -> dict:
    """A fresh process; ``process_s`` is its whole life (start, imports, work, exit)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--worker", kind, "--sizes", size, "--dir", str(path.parent),
                           "--threads", str(threads)], capture_output=True, text=True, check=False, env=env)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{kind} {size} failed:\n{done.stderr[-3000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "process_s": elapsed}


def _fit(sizes: list[float], values: list[float]) -> tuple[float, float]:
    """Least-squares ``value = fixed + slope * size``."""
    import numpy as np

    slope, fixed = np.polyfit(np.asarray(sizes), np.asarray(values), 1)
    return float(fixed), float(slope)


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="where the checkpoints are (or are written)")
    parser.add_argument("--sizes", nargs="*", default=["125m", "350m", "1.1b"], choices=list(SHAPES))
    parser.add_argument("--big", action="store_true", help="add LLaMA-7B (about 13.5 GB; not for CI)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--worker", choices=["analyze", "floor"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = args.sizes + (["7b"] if args.big else [])
    if args.worker:
        size = sizes[0]
        print(json.dumps(worker(args.worker, size, args.dir / f"llama-{size}.safetensors", args.threads[0])))
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in sizes:
        path = args.dir / f"llama-{size}.safetensors"
        if not path.exists():
            print(f"writing {path} ...", flush=True)
            write(size, path)
        with path.open("rb") as file:  # warm the page cache for both sides alike, in chunks (no big RSS to inherit)
            while file.read(64 << 20):
                pass
        size_mib = path.stat().st_size / 2**20
        for threads in args.threads:
            runs: dict[str, list[dict]] = {"analyze": [], "floor": []}
            for rep in range(args.reps):
                for kind in (("analyze", "floor") if rep % 2 == 0 else ("floor", "analyze")):
                    runs[kind].append(measure(kind, size, path, threads))
                print(f"  {size} threads={threads} rep {rep + 1}/{args.reps}: analyze "
                      f"{runs['analyze'][-1]['seconds']:.1f} s (trace {runs['analyze'][-1]['trace_s']:.1f} s), "
                      f"floor {runs['floor'][-1]['seconds']:.1f} s; load {os.getloadavg()[0]:.1f}", flush=True)
            pairs = list(zip(runs["analyze"], runs["floor"]))
            rows.append({
                "size": size, "threads": threads, "file_mib": size_mib, "parameters": runs["analyze"][0]["parameters"],
                **{f"{side}_{key}": _median(runs[side], key) for side in ("analyze", "floor")
                   for key in ("seconds", "cpu_s", "process_s", "peak_mib", "process_peak_mib")},
                "trace_s": _median(runs["analyze"], "trace_s"),
                "time_ratios": [a["seconds"] / b["seconds"] for a, b in pairs],
                "cpu_ratios": [a["cpu_s"] / b["cpu_s"] for a, b in pairs],
                "process_ratios": [a["process_s"] / b["process_s"] for a, b in pairs],
                "rss_ratios": [a["peak_mib"] / size_mib for a, _ in pairs],
                "load": os.getloadavg()[0],
            })
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    _print_tables(rows, args.reps)


def _print_tables(rows: list[dict], reps: int) -> None:
    print("\nTimed work only (fresh process; interpreter, imports and the meta model excluded on both sides):\n")
    print("| model | threads | file | analyze (a) | of which trace | floor (b) | (a)/(b) wall | (a)/(b) CPU | "
          "peak RSS (a) | RSS / file | load |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| LLaMA {r['size']} | {r['threads']} | {r['file_mib']:.0f} MiB | {r['analyze_seconds']:.1f} s | "
              f"{r['trace_s']:.1f} s | {r['floor_seconds']:.1f} s | **{_spread(r['time_ratios'])}** | "
              f"{_spread(r['cpu_ratios'])} | {r['analyze_peak_mib']:.0f} MiB | **{_spread(r['rss_ratios'])}** | "
              f"{r['load']:.1f} |")
    print("\nWhole process (start, imports, work, exit; peak RSS of the process):\n")
    print("| model | threads | analyze | floor | ratio | peak RSS analyze | peak RSS floor |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| LLaMA {r['size']} | {r['threads']} | {r['analyze_process_s']:.1f} s | {r['floor_process_s']:.1f} s | "
              f"{_spread(r['process_ratios'])} | {r['analyze_process_peak_mib']:.0f} MiB | "
              f"{r['floor_process_peak_mib']:.0f} MiB |")
    for threads in sorted({r["threads"] for r in rows}):
        mine = [r for r in rows if r["threads"] == threads]
        if len(mine) < 3:
            continue
        sizes = [r["file_mib"] / 1024 for r in mine]
        print(f"\nLinear fits over the sizes, threads={threads} (fixed + per-GiB of checkpoint):")
        for label, key in (("analyze (a), s", "analyze_seconds"), ("floor (b), s", "floor_seconds"),
                           ("trace, s", "trace_s"), ("peak RSS (a), MiB", "analyze_peak_mib")):
            fixed, slope = _fit(sizes, [r[key] for r in mine])
            print(f"  {label}: {fixed:.2f} + {slope:.2f} per GiB")
        (fa, sa), (fb, sb) = _fit(sizes, [r["analyze_seconds"] for r in mine]), _fit(sizes, [r["floor_seconds"] for r in mine])
        print(f"  per-GiB ratio (a)/(b) = {sa / sb:.2f}: the ratio a large checkpoint tends to")
    print(f"\nmedians [min-max] of {reps} alternating repetitions, fresh process each; "
          "targets (a)/(b) <= 3, RSS/file <= 0.5; load = 1-minute load average of the machine")


if __name__ == "__main__":
    main()
