"""LLM-Pruner-style pruning of a byte-level LLaMA on Shakespeare: Taylor vs CoNNect vs Taylor x CoNNect.

Per seed: train a small LLaMA (4 layers, hidden 128, 4 heads, SwiGLU 352) on the
training plays; then for each ratio (20%, 50% of the attention heads and of the MLP
channels of the inner layers; first and last layers dense) and each importance,
prune a copy (Taylor on ``--calibration-batches`` training batches), and give it the
same short recovery fine-tune; the dense model gets that fine-tune too (the control:
the base model is not trained to convergence, so recovery alone lowers perplexity). Validation perplexity (held-out plays) before, after
pruning and after recovery; parameters and MACs per token; paired same-seed
differences against Taylor.

Hyperparameters (Adam, lr 3e-3 for training and 1e-3 for recovery, cosine) were
fixed beforehand, not tuned; the test plays are not read.

Run: ``OMP_NUM_THREADS=1 python analysis/llm_pruning.py [--seeds 0 1 2] [--quick]``
(writes analysis/results/llm_pruning.json and figures/llm_pruning.png).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
from itertools import islice
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from netgraph.pruning.llm import IMPORTANCES, macs_per_token, prune_llama  # noqa: E402
from netgraph.training.engine import TrainConfig, seed_everything, train  # noqa: E402
from netgraph.training.text import CausalLM, build_llama, llama_config, perplexity, text_loaders  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RATIOS = (0.2, 0.5)


def run(seeds: list[int], base_steps: int, recovery_steps: int, calibration_batches: int, seq_len: int,
        batch_size: int, eval_windows: int) -> list[dict]:
    rows = []
    for seed in seeds:
        loaders = text_loaders(seq_len=seq_len, batch_size=batch_size, eval_windows=eval_windows, seed=seed)
        seed_everything(seed)
        model = CausalLM(build_llama(llama_config(layers=4, hidden=128, heads=4)))
        train(model, loaders.train, loaders.validation,
              TrainConfig(epochs=1, optimizer="adam", lr=3e-3, weight_decay=0.0, max_steps_per_epoch=base_steps,
                          seed=seed), progress=True)
        dense_ppl = perplexity(model, loaders.validation)
        dense = {"params": sum(p.numel() for p in model.parameters()), "macs": macs_per_token(model.lm, seq_len)}
        calibration = [ids for ids, _ in islice(loaders.train, calibration_batches)]
        # the dense model gets the same recovery budget: the control every pruned arm is read against
        arms = [(0.0, "dense"), *((r, imp) for r in RATIOS for imp in IMPORTANCES)]
        for ratio, importance in tqdm(arms, desc=f"seed {seed} arms"):
            pruned = copy.deepcopy(model)
            seed_everything(seed)
            if importance != "dense":
                prune_llama(pruned.lm, ratio, importance=importance, calibration=calibration, seq_len=seq_len)
            after = perplexity(pruned, loaders.validation)
            train(pruned, loaders.train, loaders.validation,
                  TrainConfig(epochs=1, optimizer="adam", lr=1e-3, weight_decay=0.0,
                              max_steps_per_epoch=recovery_steps, seed=seed + 1000), progress=False)
            rows.append({
                "seed": seed, "ratio": ratio, "importance": importance, "ppl_dense": dense_ppl,
                "ppl_pruned": after, "ppl_recovered": perplexity(pruned, loaders.validation),
                "params": sum(p.numel() for p in pruned.parameters()), "params_dense": dense["params"],
                "macs": macs_per_token(pruned.lm, seq_len), "macs_dense": dense["macs"],
            })
            print(json.dumps(rows[-1]))
    return rows


def _ms(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def _paired(rows: list[dict], ratio: float, imp: str, stage: str, against: str) -> list[float]:
    """Same-seed differences of ``stage`` perplexity: arm minus the ``against`` arm (or the dense model)."""
    ref = {r["seed"]: r for r in rows if r["importance"] == against and (against == "dense" or r["ratio"] == ratio)}
    return [r[stage] - ref[r["seed"]][stage if against != "dense" or stage == "ppl_recovered" else "ppl_dense"]
            for r in rows if r["ratio"] == ratio and r["importance"] == imp and r["seed"] in ref]


def table(rows: list[dict]) -> str:
    lines = [
        "| removed | importance | val ppl after pruning | Δ vs Taylor (paired) | after recovery | "
        "Δ vs Taylor (paired) | Δ vs dense + same recovery | params | MACs/token |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    dense = [r for r in rows if r["importance"] == "dense"]
    lines.append(f"| 0% | dense | {_ms([r['ppl_dense'] for r in dense])} | — | {_ms([r['ppl_recovered'] for r in dense])} "
                 "| — | — | 1.00x | 1.00x |")
    for ratio in RATIOS:
        for imp in IMPORTANCES:
            sel = [r for r in rows if r["ratio"] == ratio and r["importance"] == imp]
            if not sel:
                continue

            def vs_taylor(stage: str) -> str:
                return "—" if imp == "taylor" else _ms(_paired(rows, ratio, imp, stage, "taylor"))

            lines.append(
                f"| {ratio:.0%} | {imp} | {_ms([r['ppl_pruned'] for r in sel])} | {vs_taylor('ppl_pruned')} "
                f"| {_ms([r['ppl_recovered'] for r in sel])} | {vs_taylor('ppl_recovered')} "
                f"| {_ms(_paired(rows, ratio, imp, 'ppl_recovered', 'dense'))} "
                f"| {sel[0]['params'] / sel[0]['params_dense']:.2f}x | {sel[0]['macs'] / sel[0]['macs_dense']:.2f}x |"
            )
    return "\n".join(lines)


def figure(rows: list[dict], path: Path) -> None:
    """Same-seed perplexity increase over the dense model (after recovery: over the dense
    model given the same recovery steps), so seed-to-seed spread of the base cancels."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    for ax, stage, title in zip(axes, ("ppl_pruned", "ppl_recovered"), ("after pruning", "after recovery")):
        for k, imp in enumerate(IMPORTANCES):
            for j, ratio in enumerate(RATIOS):
                vals = _paired(rows, ratio, imp, stage, "dense")
                x = j + (k - 1) * 0.22
                ax.scatter([x] * len(vals), vals, s=14, color=f"C{k}", label=imp if j == 0 else None)
                ax.hlines(statistics.mean(vals), x - 0.09, x + 0.09, color=f"C{k}")
        ax.axhline(0, color="grey", ls=":", lw=1)
        ax.set_xticks(range(len(RATIOS)), [f"{r:.0%} of heads + MLP channels" for r in RATIOS], fontsize=8)
        ax.set_title(f"{title}: Δ val perplexity vs dense", fontsize=9)
    axes[0].set_ylabel("perplexity increase (same seed)")
    axes[0].legend(fontsize=7, title="importance", title_fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--base-steps", type=int, default=300)
    parser.add_argument("--recovery-steps", type=int, default=40)
    parser.add_argument("--calibration-batches", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="tiny budget: checks the script runs")
    parser.add_argument("--from-json", action="store_true", help="only redraw table and figure from the results file")
    args = parser.parse_args()
    out = ROOT / "analysis" / "results" / "llm_pruning.json"
    if args.from_json:
        rows = json.loads(out.read_text())
    else:
        torch.set_num_threads(1)
        base, recovery = (20, 5) if args.quick else (args.base_steps, args.recovery_steps)
        rows = run(args.seeds, base, recovery, args.calibration_batches, seq_len=64, batch_size=16, eval_windows=64)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=1))
    print(table(rows))
    figure(rows, ROOT / "figures" / "llm_pruning.png")


if __name__ == "__main__":
    main()
