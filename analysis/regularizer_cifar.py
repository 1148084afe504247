#!/usr/bin/env python
"""Experiment (c): CoNNect vs no regularizer vs L1 before magnitude pruning, on CIFAR-10.

Claim reproduced
    The LeNet study of analysis/regularizer_study.py at CIFAR scale: networks
    trained with the CoNNect regularizer keep more accuracy and stay connected
    (no layer collapse) when magnitude-pruned (one-shot or IMP) to high
    compression, compared with no regularizer and with L1. Models ``resnet20`` and
    ``vgg16_bn_cifar``.

Protocol
    Exactly the one of experiment (b) (analysis/_regprune.py): dense training with
    each regularizer, one-shot global magnitude and IMP (rewinding to the trained
    weights, one round per 10^0.5), 10x ... 1000x, fine-tuning with a fixed budget,
    accuracy before/after fine-tuning, effective compression, collapse,
    disconnection, log phi; 3 seeds. Defaults: SGD (momentum 0.9, weight decay
    5e-4, cosine), lr 0.1, 160 dense epochs, 30 fine-tuning epochs at lr 0.01,
    batch 128, random crop + flip (``netgraph.training.data``'s cifar10).

    lambda_R = 0.3 and lambda_1 = 5e-6 are *untuned* starting points for CIFAR
    (L1 is a sum over all weights, so lambda_1 scales with the model's size): run
    ``--tune`` first (first seed, 7/8 : 1/8 validation split of the training set,
    criterion accuracy after 100x global magnitude + fine-tuning; reduced epochs
    advisable) and pass the chosen ``--lambda-r`` / ``--lambda-1``.

Run (needs torchvision's CIFAR-10 under DATA; nothing is downloaded)
    python analysis/regularizer_cifar.py --data-root DATA                 # full: GPU-days on CPU, hours on a GPU
    python analysis/regularizer_cifar.py --data-root DATA --quick         # 1 seed, 1+1 epochs x 20 steps, 3 levels
    python analysis/regularizer_cifar.py --data-root DATA --tune --dense-epochs 30
    Without --data-root the script prints one line and exits with status 2.
    Not run in this repository's environment (no CIFAR-10 on disk, no internet);
    its code path is smoke-tested with the hidden ``--dataset fake-cifar`` (random
    images with CIFAR-10's shapes), e.g.
    python analysis/regularizer_cifar.py --dataset fake-cifar --quick --out /tmp/fake

Runtime
    Full protocol on one modern GPU: roughly 2 models x 3 regularizers x 3 seeds x
    (160 + 11 x 30) epochs; ResNet-20 ~10 s/epoch, VGG-16 ~15 s/epoch -> about a day.
    Use --seeds 1, fewer epochs or --models resnet20 to cut it down.

Outputs (``--out``, default ``results/regularizer_cifar/``)
    runs/*.json, models/*.pt, dense.csv/.md, pruned.csv/.md, headline.md and
    regularizer_cifar.png (copied to figures/ by a full run), as in experiment (b).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _regprune as rp  # noqa: E402
from _common import Timer, limit_threads  # noqa: E402

from netgraph.atomic import atomic_write_text  # noqa: E402

NAME = "regularizer_cifar"
DEFAULTS = {"models": "resnet20,vgg16_bn_cifar", "seeds": 3, "lambda_r": 0.3, "lambda_1": 5e-6,
            "dense_epochs": 160, "finetune_epochs": 30, "optimizer": "sgd", "lr": 0.1, "finetune_lr": 0.01,
            "weight_decay": 5e-4, "batch_size": 128}
QUICK = {"seeds": 1, "dense_epochs": 1, "finetune_epochs": 1, "max_steps_per_epoch": 20}
FAKE_QUICK = {**QUICK, "max_steps_per_epoch": 2, "train_subset": 256, "test_subset": 128}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    rp.add_protocol_args(parser, DEFAULTS)
    parser.add_argument("--data-root", default=None, help="directory holding torchvision's CIFAR-10 (cifar-10-batches-py)")
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "fake-cifar"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dataset == "cifar10" and args.data_root is None:
        print("regularizer_cifar.py: needs CIFAR-10 on disk: pass --data-root DIR (torchvision layout); nothing was run")
        return 2
    limit_threads(args.threads)
    fake = args.dataset == "fake-cifar"
    out = args.out or Path("results") / (NAME + ("_fake" if fake else "") + ("_quick" if args.quick else ""))
    protocol = rp.protocol_from_args(args, args.dataset, FAKE_QUICK if fake else QUICK, data_root=args.data_root)
    if fake and not args.quick:
        protocol.train_subset, protocol.test_subset = FAKE_QUICK["train_subset"], FAKE_QUICK["test_subset"]
    timer = Timer()
    if args.tune:
        chosen, md = rp.tune(out, protocol, protocol.models, protocol.seeds[:1],
                             [float(v) for v in args.tune_lambda_1.split(",")],
                             [float(v) for v in args.tune_lambda_r.split(",")])
        print(md)
        for model, arms in chosen.items():
            print(f"{model}: --lambda-r {arms['CoNNect'].lambda_r:g} --lambda-1 {arms['L1'].lambda_1:g}")
        print(f"outputs in {out}/ ; wall time {timer}")
        return 0
    dense, pruned = rp.run(out, protocol)
    md = rp.tables(out, protocol, dense, pruned)
    for path in rp.figure(out, protocol, pruned, NAME, copy=not (args.quick or fake),
                          title=f"CoNNect / L1 / no regularizer, then magnitude pruning ({protocol.dataset}, {len(protocol.seeds)} seed(s))"):
        print(f"figure: {path}")
    print("\n## Dense training\n")
    print(md["dense"])
    print("## Pruned (mean ± std over seeds)\n")
    print(md["pruned"])
    for model in protocol.models:
        head = rp.headline(pruned, dense, model=model, x=2.0)
        atomic_write_text(out / f"headline_{model}.md", head)
        print(f"## {model}, pruned to 100x\n")
        print(head)
    print(f"outputs in {out}/ ; wall time {timer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
