#!/usr/bin/env python
"""The regulariser study: none, L1, CoNNect and L1 + CoNNect before pruning, with lambdas
chosen on a validation split and L1 also compared at matched dense accuracy.

Claim tested
    Training with the CoNNect regulariser (``lambda_R * R``, DESIGN.md section 3), alone
    or on top of L1, leaves a network that loses less accuracy when pruned (global or
    layerwise magnitude, the CoNNect score, IMP) than the same network trained without a
    regulariser or with L1 alone, including L1 strong enough to reach the same dense
    accuracy (CoNNect lowers dense accuracy a little, like a stronger L1 would).

Protocol (``study``; the engine is analysis/_regprune.py)
    LeNet-300-100 and LeNet-5 on mnist5k (4000 train / 1000 test, packaged). SGD
    (momentum 0.9, lr 0.05 for LeNet-300-100 and 0.02 for LeNet-5, which at 0.05
    diverged or stalled in 3 of its 22 tuning runs; cosine, batch 128, no weight
    decay), 5 dense epochs, 1 fine-tuning epoch (same optimiser and lr, task loss only,
    masks fixed) after every prune. Pruners: one-shot global magnitude, one-shot layerwise magnitude, the
    CoNNect score (20 rounds on the exponential schedule, not the default 100: the
    CPU budget), IMP rewinding to the trained weights (one round per
    factor 10^0.5; each level is fine-tuned for the same 1 epoch before it is
    reported, but it inherits the masks found with the earlier levels' fine-tuning,
    so IMP's total training to reach 10^x is 2x epochs, one-shot's 1). Levels 10x,
    100x, 316x, 1000x. Seeds 0-4.

    Lambdas (``tune``): on a validation split carved from the training data (3500 /
    500, fixed permutation, seed 0; the test set is never read) with tuning seeds 100
    and 101, each candidate is trained, pruned to 100x by global magnitude and
    fine-tuned; the criterion is the validation accuracy after fine-tuning (mean over
    the tuning seeds). Grids: lambda_1 in {3e-4, 1e-3, 2e-3, 4e-3}, lambda_R in {0.3, 1,
    3}, and L1 + CoNNect = the chosen lambda_1 plus lambda_R in {0.3, 1, 3}. "Matched
    L1" is the lambda_1 of the grid whose dense validation accuracy is closest to the
    chosen L1 + CoNNect arm's.

    Reported on the test set: mean ± std over seeds, and paired (same-seed)
    differences ± standard error against none, L1 and matched L1.

Main-job question (``mainjob``)
    Which regularised arm should ``netgraph compare``'s CoNNect arm (now ``magnitude+l1+connect``) use, in its
    own budget (LeNet-300-100, mnist5k, Adam lr 1e-2 cosine, 3 dense epochs, 1
    fine-tuning epoch)? On the validation split, seeds 0-2 (0-4 for the contenders):
    CoNNect coupled into Adam (today, lambda_R 1), decoupled (lambda_R 10 ... 1000), L1
    5e-4 (the main job's L1 arm) + decoupled CoNNect (lambda_R 3 ... 1000), and SGD
    (momentum 0.9, lr 0.05) dense training for the regularised arm with the main job's
    Adam fine-tuning; global magnitude to 10x, 100x, 1000x.

Run
    python analysis/regularizer_study.py mainjob     # ~10 min wall (1 thread, shared 2-core CPU)
    python analysis/regularizer_study.py tune        # ~10 min
    python analysis/regularizer_study.py study       # tune, then the test runs, tables, figure: ~40 min
    python analysis/regularizer_study.py study --quick   # smoke: 1 seed, 1+1 epochs, 2 levels, ~7 min
    ResNet-20 (not run here, ~6 h on this CPU): add ``--models resnet20 --seeds 3``

Outputs (``--out``, default ``results/regularizer_study/``): ``runs/``, ``models/``
(resumable units), ``mainjob.md``, ``tune_<model>.{csv,md}``, ``dense.{csv,md}``,
``summary.{csv,md}``, ``pruned.{csv,md}``, ``paired.{csv,md}``, ``regularizer_study.png`` (copied to figures/
by a full run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _regprune as rp  # noqa: E402
from _common import Timer, limit_threads  # noqa: E402

from netgraph.atomic import atomic_write_text  # noqa: E402
from netgraph.errors import NetgraphError  # noqa: E402
from netgraph.experiments.tables import markdown_table, paired_differences, pm, write_table  # noqa: E402

NAME = "regularizer_study"
ONESHOT = ("magnitude", "magnitude_layerwise", "connect")
PRUNER_TITLES = {"magnitude": "global magnitude", "magnitude_layerwise": "layerwise magnitude",
                 "connect": "CoNNect score", "imp": "IMP (rewind to trained)"}


def paired_text(rows: list[dict], a: str, b: str, **where) -> str:
    """``a - b`` of the accuracy after fine-tuning, paired by seed, among the rows matching ``where``."""
    try:
        return paired_differences(rows, "accuracy_after_finetune", {"arm": a, **where}, {"arm": b, **where}).text()
    except NetgraphError:  # an arm without rows here (matched L1 is pruned by global magnitude only)
        return "–"


# --- the main job's question ----------------------------------------------------------------------


def mainjob(out: Path, quick: bool) -> str:
    base = rp.Protocol(dataset="mnist5k", models=["lenet300"], seeds=[], regs={}, levels=[], imp_levels=[],
                       dense_epochs=1 if quick else 3, finetune_epochs=1, optimizer="adam", lr=1e-2,
                       schedule="cosine", validation=True)
    sgd = {"optimizer": "sgd", "lr": 0.05}
    today, l1 = rp.Arm("connect coupled (today)", lambda_r=1.0), rp.Arm("l1 5e-4 (today's l1 arm)", lambda_1=5e-4)
    arms = [rp.Arm("none"), today, l1]
    arms += [rp.Arm(f"connect decoupled {lam:g}", lambda_r=lam, decoupled=True) for lam in (10.0, 30.0, 100.0, 1000.0)]
    arms += [rp.Arm(f"l1 5e-4 + connect decoupled {lam:g}", lambda_r=lam, lambda_1=5e-4, decoupled=True)
             for lam in (3.0, 10.0, 30.0, 100.0, 1000.0)]
    arms += [rp.Arm("SGD none", **sgd), rp.Arm("SGD l1 1e-3", lambda_1=1e-3, **sgd),
             rp.Arm("SGD connect 1", lambda_r=1.0, **sgd), rp.Arm("SGD l1 1e-3 + connect 1", lambda_r=1.0, lambda_1=1e-3, **sgd)]
    # the contenders get two more seeds: their differences at 1000x are within a few seeds' spread
    finalists = {"none", today.name, l1.name, *(f"l1 5e-4 + connect decoupled {lam:g}" for lam in (3.0, 10.0, 30.0))}
    seeds = [0] if quick else [0, 1, 2, 3, 4]
    levels = [1.0, 2.0] if quick else [1.0, 2.0, 3.0]
    dense, pruned = [], []
    for seed in seeds:
        for arm in arms:
            if seed < 3 or arm.name in finalists:
                d, r = rp.run_arm(out, base, arm, "lenet300", seed, levels, ["magnitude"])
                dense.append(d)
                pruned += r
    rows = []
    for arm in arms:
        row = {"arm (dense training)": arm.name,
               "dense val. acc. %": pm(d["dense_accuracy"] for d in dense if d["arm"] == arm.name)}
        for x in levels:
            row[f"{10**x:.3g}x val. acc. %"] = pm(r["accuracy_after_finetune"] for r in pruned
                                                  if (r["arm"], r["x"]) == (arm.name, x))
        for x, base_arm, label in ((2.0, today, "today"), (2.0, l1, "l1 arm"), (3.0, l1, "l1 arm")):
            row[f"{10**x:.3g}x − {label} (paired)"] = paired_text(pruned, arm.name, base_arm.name, x=x)
        rows.append(row)
    md = markdown_table(rows) + "\n"
    atomic_write_text(out / "mainjob.md", md)
    return md


# --- the study ---------------------------------------------------------------------------------------

GRID_L1 = (3e-4, 1e-3, 2e-3, 4e-3)
GRID_R = (0.3, 1.0, 3.0)
BASELINES = (("L1 + CoNNect", "L1"), ("L1 + CoNNect", "matched L1"), ("L1 + CoNNect", "none"),
             ("CoNNect", "none"), ("L1", "none"))


#: SGD learning rate per model: at 0.05 LeNet-5 diverged or stalled in 3 of the 22 tuning runs
#: on the validation split (dense accuracy 8-63 %), so it trains at 0.02
LR = {"lenet5": 0.02}


def study_protocol(quick: bool, model: str = "lenet300") -> rp.Protocol:
    return rp.Protocol(dataset="mnist5k", models=[], seeds=[], regs={}, levels=[], imp_levels=[],
                       dense_epochs=1 if quick else 5, finetune_epochs=1, optimizer="sgd", lr=LR.get(model, 0.05),
                       momentum=0.9,
                       weight_decay=0.0, schedule="cosine", score_iterations=20)


def study(out: Path, models: list[str], seeds: list[int], levels: list[float], tuning_seeds: list[int],
          quick: bool) -> dict[str, str]:
    """Tune, then every arm x seed (seeds outermost: a stopped run leaves whole seeds)."""
    chosen, md_tune = {}, ""
    for model in models:
        arms, md = rp.tune(out, study_protocol(quick, model), [model], tuning_seeds, GRID_L1, GRID_R, f"tune_{model}")
        chosen |= arms
        md_tune += md
    dense, pruned = [], []
    for model in models:
        base = study_protocol(quick, model)
        arms = chosen[model]
        for seed in seeds:
            for key, arm in arms.items():
                if key == "matched L1" and arm.lambda_1 == arms["L1"].lambda_1:  # the L1 arm's runs, renamed
                    dense += [d | {"arm": key} for d in dense if (d["model"], d["arm"], d["seed"]) == (model, "L1", seed)]
                    pruned += [r | {"arm": key} for r in pruned if (r["model"], r["arm"], r["seed"]) == (model, "L1", seed)
                               and r["pruning"] == "magnitude"]
                    continue
                prunings = ["magnitude"] if key == "matched L1" else [*ONESHOT, "imp"]
                d, r = rp.run_arm(out, base, arm, model, seed, levels, prunings)
                dense.append(d)
                pruned += r
    return {"tune": md_tune, **tables(out, chosen, dense, pruned, levels),
            "figure": figure(out, chosen, pruned, levels, quick)}


def tables(out: Path, chosen: dict, dense: list[dict], pruned: list[dict], levels: list[float]) -> dict[str, str]:
    md = {}
    rows = []
    for model, arms in chosen.items():
        for key, arm in arms.items():
            group = [d for d in dense if (d["model"], d["arm"]) == (model, key)]
            rows.append({"model": model, "arm": key, "lambda_1": f"{arm.lambda_1:g}", "lambda_R": f"{arm.lambda_r:g}",
                         "seeds": len(group), "dense test acc. %": pm(d["dense_accuracy"] for d in group),
                         "CoNNect R": pm((d["connect_R"] for d in group), scale=1, digits=2),
                         "L1 norm": pm((d["l1_norm"] for d in group), scale=1, digits=0)})
    md["dense"] = write_table(out, "dense", [{k: v for k, v in d.items() if k not in ("history", "state_path")}
                                             for d in dense], md_rows=rows, md_columns=list(rows[0]))
    rows = []
    for model, arms in chosen.items():
        for method in (*ONESHOT, "imp"):
            for x in levels:
                for key in arms:
                    group = [r for r in pruned if (r["model"], r["arm"], r["pruning"], r["x"]) == (model, key, method, x)]
                    if not group:
                        continue
                    n = len(group)
                    rows.append({"model": model, "pruner": PRUNER_TITLES[method], "compression": f"{10**x:.3g}x",
                                 "arm": key, "acc. after FT %": pm(r["accuracy_after_finetune"] for r in group),
                                 "acc. before FT %": pm(r["accuracy_before_finetune"] for r in group),
                                 "collapsed / disconnected runs": f"{sum(r['n_collapsed'] > 0 for r in group)} / "
                                                                  f"{sum(bool(r['disconnected']) for r in group)} of {n}"})
    md["pruned"] = write_table(out, "pruned", pruned, rp.PRUNED_COLUMNS + ["arm"], md_rows=rows, md_columns=list(rows[0]))
    rows = []
    for model in chosen:
        for method in (*ONESHOT, "imp"):
            for x in levels:
                row = {"model": model, "pruner": PRUNER_TITLES[method], "compression": f"{10**x:.3g}x"}
                for a, b in BASELINES:
                    row[f"{a} − {b}"] = paired_text([r for r in pruned if r["model"] == model], a, b,
                                                    pruning=method, x=x)
                if any(v != "–" for k, v in row.items() if "−" in k):
                    rows.append(row)
    md["paired"] = write_table(out, "paired", rows)
    md["summary"] = write_table(out, "summary", summary_rows(chosen, pruned, levels))
    return md


def summary_rows(chosen: dict, pruned: list[dict], levels: list[float]) -> list[dict]:
    """One row per model x pruner x level >= 100x: each arm's accuracy and the two key paired differences."""
    rows = []
    for model, arms in chosen.items():
        for method in (*ONESHOT, "imp"):
            for x in (x for x in levels if x >= 2.0):
                here = [r for r in pruned if (r["model"], r["pruning"], r["x"]) == (model, method, x)]
                if not here:
                    continue
                row = {"model": model, "pruner": PRUNER_TITLES[method], "compression": f"{10**x:.3g}x"}
                row |= {key: pm(r["accuracy_after_finetune"] for r in here if r["arm"] == key)
                        for key in arms if key != "matched L1"}
                row["L1 + CoNNect − L1"] = paired_text(here, "L1 + CoNNect", "L1")
                row["CoNNect − none"] = paired_text(here, "CoNNect", "none")
                rows.append(row)
    return rows


def figure(out: Path, chosen: dict, pruned: list[dict], levels: list[float], quick: bool) -> str:
    from _common import save_figure

    from netgraph.experiments.tables import mean_std
    from netgraph.plots.style import mpl_style, new_figure

    colors = {"none": "#000000", "L1": "#009E73", "matched L1": "#56B4E9", "CoNNect": "#D55E00",
              "L1 + CoNNect": "#CC79A7"}  # Okabe-Ito
    methods = (*ONESHOT, "imp")
    models = list(chosen)
    with mpl_style():
        fig = new_figure(3.2 * len(methods), 2.9 * len(models) + 0.6)
        axes = fig.subplots(len(models), len(methods), squeeze=False, sharey="row")
        for i, model in enumerate(models):
            for j, method in enumerate(methods):
                ax = axes[i][j]
                for key, arm in chosen[model].items():
                    if key == "matched L1" and arm.lambda_1 == chosen[model]["L1"].lambda_1:
                        continue  # the L1 arm itself: drawn once
                    xs, means, stds = [], [], []
                    for x in levels:
                        group = [r["accuracy_after_finetune"] for r in pruned
                                 if (r["model"], r["arm"], r["pruning"], r["x"]) == (model, key, method, x)]
                        if group:
                            m, s, _ = mean_std(group)
                            xs.append(10**x), means.append(100 * m), stds.append(100 * s)
                    if xs:
                        ax.errorbar(xs, means, yerr=stds, color=colors[key], marker="o", ms=3.5, lw=1.3, capsize=2,
                                    label=key)
                ax.axhline(10, color="0.5", ls=":", lw=0.8)  # chance
                ax.set_xscale("log")
                ax.set_xticks([10**x for x in levels], [f"{round(10**x)}x" for x in levels])
                ax.minorticks_off()
                ax.set_title(f"{model}: {PRUNER_TITLES[method]}", fontsize=9)
                if i == len(models) - 1:
                    ax.set_xlabel("compression")
                if j == 0:
                    ax.set_ylabel("test accuracy after FT %")
                ax.grid(True, alpha=0.4)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
        fig.suptitle("Regularise (SGD, lambdas chosen on a validation split), prune, fine-tune 1 epoch: mnist5k, "
                     "mean ± std over seeds (dotted: chance)", fontsize=9)
        return "\n".join(map(str, save_figure(fig, out, NAME, not quick)))


def tuning_seeds(args: argparse.Namespace) -> list[int]:
    return [100] if args.quick else [100, 101]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["mainjob", "tune", "study"])
    parser.add_argument("--quick", action="store_true", help="smoke run (1 seed, 1+1 epochs, fewer levels)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default="lenet300,lenet5")
    parser.add_argument("--seeds", type=int, default=5, help="test seeds 0..N-1")
    parser.add_argument("--levels", type=lambda s: [float(v) for v in s.split(",")], default=[1.0, 2.0, 2.5, 3.0],
                        help="compression exponents x (10^x)")
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    out = args.out or Path("results") / (NAME + ("_quick" if args.quick else ""))
    timer = Timer()
    if args.what == "mainjob":
        print("\n## Main job's regularised arm (LeNet-300-100, validation split, global magnitude + 1 FT epoch)\n")
        print(mainjob(out, args.quick))
    elif args.what == "tune":
        print("\n## Lambdas on the validation split (100x global magnitude + 1 FT epoch)\n")
        for model in args.models.split(","):
            print(rp.tune(out, study_protocol(args.quick, model), [model], tuning_seeds(args), GRID_L1, GRID_R,
                          f"tune_{model}")[1])
    else:
        seeds = list(range(1 if args.quick else args.seeds))
        levels = [1.0, 2.0] if args.quick else args.levels
        md = study(out, args.models.split(","), seeds, levels, tuning_seeds(args), args.quick)
        for name in ("tune", "dense", "summary", "paired", "pruned"):
            print(f"\n## {name}\n")
            print(md[name])
        print(f"figure: {md['figure']}")
    print(f"outputs in {out}/ ; wall time {timer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
