"""Streaming analysis at LLM scale: does `netgraph analyze --stream` stay near a plain read of the file?

Claim (README): analysing a LLaMA-architecture safetensors checkpoint (random bf16
weights at 50 % unstructured sparsity) with the model on the meta device and the
weights read one module at a time costs (a) at most 3x (b) the floor, one pass that
reads every tensor of the file and sums its absolute values, and peaks at most at
half the checkpoint's bytes of resident memory; both grow linearly or better with
the model.

Method. ``--write`` makes the checkpoints (TinyLlama-1.1B shape and two smaller
ones; ``--big`` adds LLaMA-7B, not for CI). Every measurement is a fresh subprocess
(peak RSS from ``resource.getrusage``, minus the process's peak before the timed
work, so the interpreter and torch count for neither side); (a) and (b) alternate,
medians over repetitions, ratios per repetition. The OS page cache is warm for both
(each file is read once before timing).

Run: ``python analysis/bench_scale.py --dir /tmp/scale [--sizes 125m 350m 1.1b] [--reps 3] [--threads 1 2]``.
"""

from __future__ import annotations

import argparse
import json
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


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(kind: str, size: str, path: Path, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    if kind == "floor":
        from safetensors import safe_open

        before = _peak_mib()
        start = time.perf_counter()
        with safe_open(str(path), framework="pt") as f:
            total = sum(float(f.get_tensor(key).abs().float().sum()) for key in f.keys())
        return {"seconds": time.perf_counter() - start, "peak_mib": _peak_mib() - before, "check": total}
    from netgraph.connectivity.streaming import analyze_streaming

    model = meta_model(size)
    tokens = torch.zeros((1, SEQ), dtype=torch.long, device="meta")
    before = _peak_mib()
    start = time.perf_counter()
    report = analyze_streaming(model, path, example_input=(tokens,))
    return {"seconds": time.perf_counter() - start, "peak_mib": _peak_mib() - before,
            "check": report.alive, "disconnected": report.disconnected, "parameters": report.parameters}


def measure(kind: str, size: str, path: Path, threads: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--worker", kind, "--sizes", size, "--dir", str(path.parent),
                           "--threads", str(threads)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} {size} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, required=True, help="where the checkpoints are (or are written)")
    parser.add_argument("--sizes", nargs="*", default=["125m", "350m", "1.1b"], choices=list(SHAPES))
    parser.add_argument("--big", action="store_true", help="add LLaMA-7B (about 13.5 GB; not for CI)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
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
        path.read_bytes()  # warm the page cache for both sides alike
        size_mib = path.stat().st_size / 2**20
        for threads in args.threads:
            runs = {"analyze": [], "floor": []}
            for rep in range(args.reps):
                for kind in (("analyze", "floor") if rep % 2 == 0 else ("floor", "analyze")):
                    runs[kind].append(measure(kind, size, path, threads))
                print(f"  {size} threads={threads} rep {rep + 1}/{args.reps}: analyze "
                      f"{runs['analyze'][-1]['seconds']:.1f}s, floor {runs['floor'][-1]['seconds']:.1f}s", flush=True)
            ratio = statistics.median(a["seconds"] / b["seconds"] for a, b in zip(runs["analyze"], runs["floor"]))
            peak = statistics.median(r["peak_mib"] for r in runs["analyze"])
            rows.append({"size": size, "threads": threads, "file_mib": size_mib,
                         "parameters": runs["analyze"][0]["parameters"],
                         "analyze_s": statistics.median(r["seconds"] for r in runs["analyze"]),
                         "floor_s": statistics.median(r["seconds"] for r in runs["floor"]),
                         "time_ratio": ratio, "peak_mib": peak, "rss_ratio": peak / size_mib})
    print()
    print("| model | threads | file | prunable weights | analyze (a) | floor (b) | (a)/(b) | peak RSS (a) | RSS / file |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| LLaMA {r['size']} | {r['threads']} | {r['file_mib']:.0f} MiB | {r['parameters']:,} | "
              f"{r['analyze_s']:.1f} s | {r['floor_s']:.1f} s | **{r['time_ratio']:.2f}** | {r['peak_mib']:.0f} MiB | "
              f"**{r['rss_ratio']:.2f}** |")
    print(f"\nmedians of {args.reps} alternating repetitions, fresh process each; targets (a)/(b) <= 3, RSS/file <= 0.5")


if __name__ == "__main__":
    main()
