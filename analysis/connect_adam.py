#!/usr/bin/env python
"""Does decoupling CoNNect from Adam remove its Adam failure?

Claim tested
    With Adam, CoNNect-regularised training then global magnitude pruning to 100x
    collapses LeNet-300-100's accuracy (12.4 ± 2.1 % after fine-tuning, against 69.6 %
    without a regulariser, README experiment (b)): Adam normalises CoNNect's small,
    row-constant first-layer gradient into full-size steps that inflate whole rows.
    Applied as its own step outside Adam (``TrainConfig(decoupled_reg=True)``, like
    AdamW's weight decay), the regulariser should no longer do that.

Protocol
    LeNet-300-100 on mnist5k; seeds 0, 1, 2; Adam lr 1e-3, cosine, batch 128, 10 dense
    epochs with lambda_R = 0.3 (experiment (b)'s value: the question is whether the
    same lambda fails decoupled) for arms none | coupled | decoupled; global magnitude
    pruning to 100x; 3 fine-tuning epochs (Adam, task loss only); the same budget for
    every arm. A decoupled step is far smaller than Adam's normalised one, so its
    lambda is chosen on a validation split carved from the training data (3500/500,
    seed 0, grid 0.3, 3, 30, by accuracy after pruning and fine-tuning); the test set
    is read only by the final runs. Reported: dense and fine-tuned test accuracy,
    collapse, and paired (same-seed) differences against no regulariser.

Run
    python analysis/connect_adam.py [--out results/connect_adam] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Timer, limit_threads  # noqa: E402
from _regprune import validation_split  # noqa: E402

import netgraph as ng  # noqa: E402
from netgraph.experiments.store import run_unit  # noqa: E402
from netgraph.experiments.tables import markdown_table, paired_differences, pm  # noqa: E402
from netgraph.training.data import load_dataset, make_loaders  # noqa: E402
from netgraph.training.engine import seed_everything  # noqa: E402

LAMBDA_R = 0.3
GRID = (0.3, 3.0, 30.0)


def unit(seed: int, lambda_r: float, decoupled: bool, epochs: int, finetune: int, validation: bool = False) -> dict:
    splits = load_dataset("mnist5k")
    splits = validation_split(splits) if validation else splits
    train_loader, test_loader = make_loaders(splits, 128, seed=seed)
    seed_everything(seed)
    model = ng.build_model("lenet300", splits.num_classes, splits.input_shape)
    config = ng.TrainConfig(epochs=epochs, optimizer="adam", lr=1e-3, weight_decay=0.0, seed=seed,
                            lambda_r=lambda_r, decoupled_reg=decoupled)
    regularizer = ng.CoNNect(model, input_shape=splits.input_shape) if lambda_r else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the coupled arm warns by design
        dense = ng.train(model, train_loader, test_loader, config, regularizer=regularizer, progress=False)
    ng.prune(model, "magnitude", compression=100)
    report_before = ng.analyze(ng.trace(model, input_shape=splits.input_shape))
    tune = ng.TrainConfig(epochs=finetune, optimizer="adam", lr=1e-3, weight_decay=0.0, seed=seed)
    tuned = ng.train(model, train_loader, test_loader, tune, progress=False)
    arm = "none" if not lambda_r else ("decoupled" if decoupled else "coupled")
    return {"seed": seed, "arm": arm, "lambda_r": lambda_r, "dense_accuracy": dense.final_accuracy, "accuracy": tuned.final_accuracy,
            "collapsed": report_before.collapsed_layers, "disconnected": report_before.disconnected,
            "effective_compression": report_before.effective_compression}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/connect_adam"))
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 + 1 epochs")
    args = parser.parse_args()
    limit_threads(1)
    seeds, epochs, finetune = ([0], 2, 1) if args.quick else ([0, 1, 2], 10, 3)
    timer = Timer()
    tuning = [run_unit(args.out, ("validation", lam, epochs, finetune), lambda: unit(0, lam, True, epochs, finetune, True))
              for lam in GRID]
    chosen = max(tuning, key=lambda r: r["accuracy"])["lambda_r"]
    print("decoupled lambda_R on validation: " + ", ".join(f"{r['lambda_r']:g} -> {100 * r['accuracy']:.1f}%"
                                                            for r in tuning) + f"; chosen {chosen:g}")
    arms = {"none": (0.0, False), "coupled": (LAMBDA_R, False), "decoupled": (chosen, True)}
    rows = [run_unit(args.out, (arm, lam, seed, epochs, finetune), lambda: unit(seed, lam, dec, epochs, finetune))
            for seed in seeds for arm, (lam, dec) in arms.items()]
    table = [{"regulariser": f"{arm} (lambda_R {arms[arm][0]:g})", "dense accuracy": pm(r["dense_accuracy"] for r in rows if r["arm"] == arm),
              "after 100x + fine-tune": pm(r["accuracy"] for r in rows if r["arm"] == arm),
              "collapsed runs": sum(bool(r["collapsed"]) for r in rows if r["arm"] == arm),
              "vs none (paired)": "" if arm == "none" else
              paired_differences(rows, "accuracy", {"arm": arm}, {"arm": "none"}).text()} for arm in arms]
    print(markdown_table(table))
    print(f"\n{len(seeds)} seeds, {timer}")


if __name__ == "__main__":
    main()
