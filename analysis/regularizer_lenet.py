#!/usr/bin/env python
"""Experiment (b): CoNNect vs no regularizer vs L1 before magnitude pruning, on LeNets (mnist5k).

Claim reproduced
    Training with the CoNNect regularizer (``lambda_R * R``, R = -log phi of the
    layer-normalised channel graph, DESIGN.md section 3) concentrates the weight
    mass on few well-connected paths, so that magnitude pruning of the trained
    network at high compression keeps it connected (no layer collapse) and loses
    less accuracy than without a regularizer or with a plain L1 penalty. The issue's
    "one real result" is the row LeNet-300-100 / mnist5k / one-shot magnitude at
    100x (99% sparsity), with and without CoNNect: printed separately at the end.

Protocol (see analysis/_regprune.py)
    models lenet300 (LeNet-300-100) and lenet5; mnist5k (4000 train / 1000 test,
    packaged, no download); seeds 0,1,2; Adam lr 1e-3, cosine, batch 128;
    dense training 10 epochs with regularizer none | connect (lambda_R) | l1
    (lambda_1 * sum |w|); prune by (i) one-shot global magnitude and (ii) IMP with
    rewinding to the trained weights (one round per 10^0.5, starting at 10^0.5),
    at 10x, 31.6x, 100x, 316x, 1000x; fine-tune 3 epochs (task loss only, masks
    fixed); record accuracy before/after fine-tuning, effective compression,
    collapsed/cut layers, disconnection, log phi.

    lambda_R = 0.3 and lambda_1 = 1e-4 were chosen with ``--tune`` (seed 0, grids
    lambda_R in {0.1, 0.3, 1, 3}, lambda_1 in {3e-6, 1e-5, 3e-5, 1e-4}; table in
    analysis/README.md): the largest values on the grid whose dense accuracy stays
    within ~0.5 point of the unregularised run on both models while R (resp. the
    L1 norm) clearly drops (R 3.39 -> 2.63 on LeNet-300, 2.47 -> 1.39 on LeNet-5;
    L1 norm 6092 -> 2729 and 2144 -> 1316).

Run
    /work/venv/bin/python analysis/regularizer_lenet.py              # full: 3 seeds, ~10-15 min
    /work/venv/bin/python analysis/regularizer_lenet.py --quick      # smoke: 1 seed, 2 epochs, 3 levels, ~1 min
    /work/venv/bin/python analysis/regularizer_lenet.py --tune       # lambda sweep (1 seed, ~3 min)

Outputs (``--out``, default ``results/regularizer_lenet/``)
    runs/*.json, models/*.pt    one unit per dense training / pruned level (re-runs skip them)
    dense.csv/.md               dense accuracy, CoNNect R, L1 norm per model x regularizer
    pruned.csv/.md              model x pruning x compression x regularizer -> accuracy mean ± std, collapse
    headline.md                 the LeNet-300-100, 100x row(s)
    regularizer_lenet.png       also copied to figures/ by a full run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _regprune as rp  # noqa: E402
from _common import Timer, limit_threads  # noqa: E402

from netgraph.atomic import atomic_write_text  # noqa: E402

NAME = "regularizer_lenet"
DEFAULTS = {"models": "lenet300,lenet5", "seeds": 3, "lambda_r": 0.3, "lambda_1": 1e-4, "dense_epochs": 10,
            "finetune_epochs": 3, "optimizer": "adam", "lr": 1e-3}
QUICK = {"seeds": 1, "dense_epochs": 2, "finetune_epochs": 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    rp.add_protocol_args(parser, DEFAULTS)
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    out = args.out or Path("results") / (NAME + ("_quick" if args.quick else ""))
    protocol = rp.protocol_from_args(args, "mnist5k", QUICK)
    timer = Timer()
    if args.tune:
        md = rp.tune(out, protocol, [float(v) for v in args.tune_lambda_r.split(",")],
                     [float(v) for v in args.tune_lambda_1.split(",")])
        print("\n## Lambda sweep (1 seed; one-shot magnitude without fine-tuning; C = a layer collapsed, D = disconnected)\n")
        print(md)
        print(f"outputs in {out}/ ; wall time {timer}")
        return 0
    dense, pruned = rp.run(out, protocol)
    md = rp.tables(out, protocol, dense, pruned)
    for path in rp.figure(out, protocol, pruned, NAME, copy=not args.quick,
                          title=f"CoNNect / L1 / no regularizer, then magnitude pruning (mnist5k, {len(protocol.seeds)} seed(s))"):
        print(f"figure: {path}")
    print("\n## Dense training\n")
    print(md["dense"])
    print("## Pruned (mean ± std over seeds)\n")
    print(md["pruned"])
    head = rp.headline(pruned, dense, model="lenet300", x=2.0)
    atomic_write_text(out / "headline.md", head)
    print("## The one real result: LeNet-300-100 on mnist5k, pruned to 100x (99% sparsity)\n")
    print(head)
    print(f"outputs in {out}/ ; wall time {timer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
