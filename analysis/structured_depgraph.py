"""Does CoNNect improve DepGraph structured pruning at equal MACs?

Claim under test (CoNNect paper): multiplying CoNNect into DepGraph's importance, or
sparse-training with structured CoNNect first, raises accuracy at equal sparsity.

Method, per model and seed (every arm gets the same training budget):

1. train the dense model (``pretrain`` epochs, SGD);
2. continue it for ``sparse`` epochs twice: plain (Adam, task loss) and with
   structured CoNNect (``task + lambda_r * R``, slice L2 norms and BN gates) — the
   "no sparse training" and "sparse training" starting points;
3. from each, prune with DepGraph (Torch-Pruning, per-layer uniform ratio, the head
   kept) with each importance to 2x and 3x fewer MACs — the ratio for a MAC target
   is found once per model by bisection and is the same for every importance, so
   every arm has exactly the same MACs;
4. fine-tune every pruned model ``finetune`` epochs (Adam) and test it.

Reported: test accuracy after pruning and after fine-tuning, mean ± std over seeds,
and paired same-seed differences against magnitude importance (same start, same
target) and of sparse training against none (same importance, same target).
``lambda_r`` is fixed in advance, not tuned (no validation search was run).
Data: mnist5k (4,000 train / 1,000 test MNIST digits); torchvision ResNet-18 reads
``mnist5k-rgb32`` (the same digits upsampled to 3x32x32); ``--dataset cifar10
--data-root DIR`` runs the same protocol on CIFAR-10 (not run in CI).

Run: ``OMP_NUM_THREADS=1 python analysis/structured_depgraph.py --model lenet5 --seeds 0 1 2``
(``--model resnet20``; ``--model resnet18 --dataset mnist5k-rgb32``; ``--quick`` for a smoke run). Results resume from ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import Timer, limit_threads, mean_std, new_figure, run_unit, save_figure, style_context, write_table
from torch.utils.data import TensorDataset

from netgraph.pruning.structured import IMPORTANCES, connect_sparse_training, count, prune_to_macs, structural_prune
from netgraph.training.data import DataSplits, load_dataset, make_loaders
from netgraph.training.engine import TrainConfig, evaluate, seed_everything, train
from netgraph.training.models import build_model

TARGETS = (2.0, 3.0)
#: Budgets per model (epochs, steps per epoch cap) sized for a shared 2-core CPU.
BUDGETS = {
    "lenet5": {"pretrain": 3, "sparse": 1, "finetune": 1, "steps": None, "lr": 0.05},
    "resnet20": {"pretrain": 3, "sparse": 1, "finetune": 1, "steps": 12, "lr": 0.1},
    "resnet18": {"pretrain": 2, "sparse": 1, "finetune": 1, "steps": 10, "lr": 0.05},
}


def _splits(args, seed: int = 0) -> DataSplits:  # type: ignore[no-untyped-def]
    """The dataset; ``mnist5k-rgb32`` is mnist5k upsampled to 32x32 with the grey channel
    repeated three times, for torchvision's RGB ResNet-18."""
    if args.dataset != "mnist5k-rgb32":
        return load_dataset(args.dataset, data_root=args.data_root, seed=seed)
    grey = load_dataset("mnist5k")

    def rgb(dataset: TensorDataset) -> TensorDataset:
        x, y = dataset.tensors
        return TensorDataset(F.interpolate(x, size=32, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1), y)

    return DataSplits(rgb(grey.train), rgb(grey.test), (3, 32, 32), grey.num_classes, args.dataset)


def _loaders(args, seed):  # type: ignore[no-untyped-def]
    splits = _splits(args, seed)
    return splits, make_loaders(splits, 128, seed=seed)


def _start_points(args, seed: int, budget: dict) -> dict[str, dict[str, torch.Tensor]]:  # type: ignore[no-untyped-def]
    """Dense weights after pretraining + the plain or the CoNNect continuation."""
    splits, (train_loader, test_loader) = _loaders(args, seed)
    seed_everything(seed)
    model = build_model(args.model, num_classes=splits.num_classes, input_shape=splits.input_shape)
    config = TrainConfig(epochs=budget["pretrain"], lr=budget["lr"], seed=seed, max_steps_per_epoch=budget["steps"])
    train(model, train_loader, test_loader, config)
    starts = {}
    for arm in ("plain", "connect"):
        twin = copy.deepcopy(model)
        seed_everything(seed)
        if arm == "plain":
            cont = TrainConfig(epochs=budget["sparse"], optimizer="adam", lr=1e-3, weight_decay=0.0, seed=seed,
                               max_steps_per_epoch=budget["steps"])
            train(twin, train_loader, test_loader, cont)
        else:
            connect_sparse_training(twin, train_loader, test_loader, splits.input_shape, args.lambda_r,
                                    budget["sparse"], lr=1e-3, seed=seed)
        starts[arm] = {k: v.clone() for k, v in twin.state_dict().items()}
    return starts


def _arm(args, seed, budget, start_state, importance, ratio, target) -> dict:  # type: ignore[no-untyped-def]
    splits, (train_loader, test_loader) = _loaders(args, seed)
    model = build_model(args.model, num_classes=splits.num_classes, input_shape=splits.input_shape)
    model.load_state_dict(start_state)
    device = next(model.parameters()).device
    example = torch.zeros(1, *splits.input_shape)
    macs_before = count(model, example)[1]
    start_acc = evaluate(model, test_loader, device)["accuracy"]
    seed_everything(seed)
    batch = next(iter(train_loader)) if "taylor" in importance else None
    structural_prune(model, example, ratio, importance, batch=batch)
    pruned_acc = evaluate(model, test_loader, device)["accuracy"]
    config = TrainConfig(epochs=budget["finetune"], optimizer="adam", lr=1e-3, weight_decay=0.0, seed=seed,
                         max_steps_per_epoch=budget["steps"])
    final = train(model, train_loader, test_loader, config, progress=False).final_accuracy
    return {"start_accuracy": start_acc, "pruned_accuracy": pruned_acc, "finetuned_accuracy": final,
            "mac_reduction": macs_before / count(model, example)[1], "ratio": ratio, "target": target}


def _ratios(args) -> dict[float, float]:  # type: ignore[no-untyped-def]
    """The per-layer ratio reaching each MAC target (importance-independent for uniform pruning)."""
    splits = _splits(args)
    model = build_model(args.model, num_classes=splits.num_classes, input_shape=splits.input_shape)
    example = torch.zeros(1, *splits.input_shape)
    return {t: prune_to_macs(copy.deepcopy(model), example, t, "magnitude").ratio for t in TARGETS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lenet5", choices=sorted(BUDGETS))
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lambda-r", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="one seed, 2x only, no figure copy")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    limit_threads(args.threads)
    out = args.out or Path("results") / f"structured_{args.model}_{args.dataset}"
    budget = dict(BUDGETS[args.model])
    seeds = args.seeds[:1] if args.quick else args.seeds
    timer = Timer()
    ratios = {float(k): v for k, v in run_unit(out, ("ratios",), lambda: _ratios(args)).items()}
    targets = TARGETS[:1] if args.quick else TARGETS
    results = []
    for seed in seeds:
        starts = None
        for start in ("plain", "connect"):
            for target in targets:
                for importance in IMPORTANCES:
                    key = ("arm", seed, start, target, importance)
                    def compute(start=start, target=target, importance=importance):  # noqa: E306
                        nonlocal starts
                        if starts is None:
                            starts = _start_points(args, seed, budget)
                        return _arm(args, seed, budget, starts[start], importance, ratios[target], target)
                    row = run_unit(out, key, compute)
                    results.append({"seed": seed, "sparse_training": start == "connect", "importance": importance,
                                    **row})
    print(f"{len(results)} arms in {timer}")
    _report(args, out, results, targets, copy_figure=not args.quick)


def _report(args, out: Path, results: list[dict], targets, copy_figure: bool) -> None:  # type: ignore[no-untyped-def]
    def cell(sparse, target, importance, key):  # type: ignore[no-untyped-def]
        return [r[key] for r in results if r["sparse_training"] == sparse and r["target"] == target
                and r["importance"] == importance]

    def by_seed(sparse, target, importance, key="finetuned_accuracy"):  # type: ignore[no-untyped-def]
        return {r["seed"]: r[key] for r in results if r["sparse_training"] == sparse and r["target"] == target
                and r["importance"] == importance}

    def pm(values, digits=1):  # type: ignore[no-untyped-def]
        mean, std, n = mean_std(values)
        return "–" if n == 0 else f"{100 * mean:.{digits}f} ± {100 * std:.{digits}f}"

    def diff(a: dict, b: dict) -> str:
        paired = [a[s] - b[s] for s in a if s in b]
        return pm(paired) if paired else "–"

    rows, md = [], []
    for target in targets:
        for sparse in (False, True):
            for importance in IMPORTANCES:
                fin = cell(sparse, target, importance, "finetuned_accuracy")
                rows.append({"target": target, "sparse_training": sparse, "importance": importance,
                             "pruned_mean": mean_std(cell(sparse, target, importance, "pruned_accuracy"))[0],
                             "finetuned_mean": mean_std(fin)[0], "finetuned_std": mean_std(fin)[1], "n": len(fin)})
                md.append({
                    "MACs": f"{target:g}x", "sparse training": "CoNNect" if sparse else "none",
                    "importance": importance,
                    "acc. pruned (%)": pm(cell(sparse, target, importance, "pruned_accuracy")),
                    "acc. fine-tuned (%)": pm(fin),
                    "vs magnitude (paired, pp)": "–" if importance == "magnitude" else
                    diff(by_seed(sparse, target, importance), by_seed(sparse, target, "magnitude")),
                    "sparse vs none (paired, pp)": "–" if not sparse else
                    diff(by_seed(True, target, importance), by_seed(False, target, importance)),
                })
    columns = ["MACs", "sparse training", "importance", "acc. pruned (%)", "acc. fine-tuned (%)",
               "vs magnitude (paired, pp)", "sparse vs none (paired, pp)"]
    seeds = sorted({r["seed"] for r in results})
    dense = pm([r["start_accuracy"] for r in results if r["importance"] == "magnitude" and r["target"] == targets[0]
                and not r["sparse_training"]])
    header = (f"{args.model} on {args.dataset}, seeds {seeds}; unpruned (plain start) accuracy {dense} %; "
              f"mean ± std over seeds, differences in percentage points\n\n")
    table = write_table(out, f"structured_{args.model}", rows, md_rows=md, md_columns=columns)
    (out / f"structured_{args.model}.md").write_text(header + table)
    print(header + table)
    _figure(args, out, results, targets, copy_figure)


def _figure(args, out: Path, results: list[dict], targets, copy_figure: bool) -> None:  # type: ignore[no-untyped-def]
    with style_context():
        fig = new_figure(3.4 * len(targets), 3.0)
        axes = fig.subplots(1, len(targets), sharey=True, squeeze=False)[0]
        for ax, target in zip(axes, targets):
            for offset, sparse, colour in ((-0.17, False, "#4c72b0"), (0.17, True, "#dd8452")):
                for i, importance in enumerate(IMPORTANCES):
                    values = [100 * r["finetuned_accuracy"] for r in results if r["target"] == target
                              and r["sparse_training"] == sparse and r["importance"] == importance]
                    if not values:
                        continue
                    ax.scatter([i + offset] * len(values), values, s=10, color=colour, alpha=0.45, linewidths=0)
                    spread = statistics.stdev(values) if len(values) > 1 else 0.0
                    ax.errorbar(i + offset, statistics.fmean(values), yerr=spread, fmt="_", color=colour,
                                markersize=12, capsize=2,
                                label=("CoNNect sparse training" if sparse else "no sparse training") if i == 0 else None)
            ax.set_xticks(range(len(IMPORTANCES)), [n.replace("+", "+\n") for n in IMPORTANCES], fontsize=7)
            ax.set_title(f"{args.model}, {target:g}x fewer MACs", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel("test accuracy after fine-tuning (%)\n(dots: seeds; bars: mean ± std)")
        axes[0].legend(fontsize=7, loc="lower left")
        save_figure(fig, out, f"structured_{args.model}", copy_figure)


if __name__ == "__main__":
    main()
