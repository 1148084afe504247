"""What does the CoNNect regularizer cost next to one training step of the byte-level LLaMA?

Claim checked: one ``reg().backward()`` of ``CoNNect(lm)`` (the LLaMA traced through
``torch.export``) costs at most 3% of one training step (forward, backward, Adam
step) of the same model at the training batch (16 windows of 64 bytes).

Method: one process; warm-up, then training steps and regularizer passes alternate;
the ratio is the median of per-pair ratios (each pass against the step beside it),
at every ``--threads`` value (both sides alike).

Run: ``python analysis/llm_regularizer_overhead.py [--threads 1 2] [--pairs 20] [--seq-len 64]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from netgraph.connect.regularizer import CoNNect
from netgraph.training.text import CausalLM, build_llama, llama_config


def measure(threads: int, pairs: int, batch: int, seq_len: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = CausalLM(build_llama(llama_config(layers=4, hidden=128, heads=4)))
    reg = CoNNect(model.lm, example_input=torch.randint(0, 256, (1, 16)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 256, (batch, seq_len + 1))

    def step() -> float:
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(ids[:, :-1]), ids[:, 1:]).backward()
        optimizer.step()
        return time.perf_counter() - started

    def regularizer() -> float:
        started = time.perf_counter()
        reg().backward()
        return time.perf_counter() - started

    for _ in range(3):
        step(), regularizer()
    steps, regs = [], []
    for _ in range(pairs):
        steps.append(step())
        regs.append(regularizer())
    ratios = [r / s for r, s in zip(regs, steps)]
    return {"threads": threads, "step_ms": 1e3 * statistics.median(steps), "reg_ms": 1e3 * statistics.median(regs),
            "ratio": statistics.median(ratios), "ratio_q1": statistics.quantiles(ratios, n=4)[0],
            "ratio_q3": statistics.quantiles(ratios, n=4)[2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seq-len", type=int, default=64, help="bytes per window of the training batch (16 windows)")
    args = parser.parse_args()
    print("| threads | training step (ms) | CoNNect fwd+bwd (ms) | ratio (median, IQR) |")
    print("|---|---|---|---|")
    for threads in args.threads:
        r = measure(threads, args.pairs, batch=16, seq_len=args.seq_len)
        print(f"| {threads} | {r['step_ms']:.1f} | {r['reg_ms']:.1f} | {r['ratio']:.3f} "
              f"({r['ratio_q1']:.3f}-{r['ratio_q3']:.3f}) |")


if __name__ == "__main__":
    main()
