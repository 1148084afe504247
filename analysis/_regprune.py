"""Engine of the regularizer experiments (analysis/regularizer_lenet.py, regularizer_cifar.py):
train dense with a regularizer, prune by global magnitude (one-shot) and by iterative
magnitude pruning (IMP), fine-tune, and tabulate accuracy and connectivity.

Protocol, per model x regularizer x seed
    1. dense: seed, build the model, train ``dense_epochs`` with
       ``task + lambda_r * CoNNect + lambda_1 * L1`` (``netgraph.training.engine.train``);
    2. one-shot magnitude: for each compression ``10^x``, prune the trained weights
       W* by global magnitude (``METHODS['magnitude']``), evaluate ("before FT"),
       fine-tune ``finetune_epochs`` with the task loss only (masks fixed), evaluate
       ("after FT");
    3. IMP with rewinding to the trained weights: levels ``10^0.5, 10^1, ...``; at each
       level the current network (W* at the start, then the previous level's
       fine-tuned net) is pruned by global magnitude to the level and rewound to W*
       (``netgraph.pruning.iterative_magnitude`` with one round and ``rewind_state=W*``),
       evaluated, then fine-tuned with the same budget. This equals separate IMP runs
       with ``2x`` rounds per target 10^x (each round removes the same fraction), so
       one trajectory serves every level.
    Every pruned state is analysed (``netgraph.connectivity.report.analyze``): nominal/effective
    compression, collapsed and cut layers, disconnected, log phi.

Units of work (resumable): dense training (JSON + state dict), each one-shot level,
each IMP level (JSON + fine-tuned state dict for the next level).
"""

from __future__ import annotations

import argparse
import functools
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from _common import save_figure
from torch.utils.data import DataLoader, Subset, TensorDataset

from netgraph.atomic import atomic_torch_save
from netgraph.connect.regularizer import CoNNect
from netgraph.connectivity.report import analyze
from netgraph.experiments.store import run_unit, unit_path
from netgraph.experiments.tables import fmt, markdown_table, mean_std, pm, write_table
from netgraph.graph.tracer import trace
from netgraph.plots.style import mpl_style, new_figure
from netgraph.pruning import (
    METHODS,
    apply_masks,
    iterative_magnitude,
    prunable_parameters,
)
from netgraph.training.data import DataSplits, load_dataset, make_loaders
from netgraph.training.engine import (
    TrainConfig,
    evaluate,
    l1_penalty,
    seed_everything,
    train,
)
from netgraph.training.models import build_model

CPU = torch.device("cpu")
REG_COLORS = {"none": "#000000", "connect": "#D55E00", "l1": "#009E73"}  # Okabe-Ito: black, vermillion, green


@dataclass
class Protocol:
    """Everything that determines the results (also the key of the stored units)."""

    dataset: str
    models: list[str]
    seeds: list[int]
    regs: dict[str, tuple[float, float]]  # name -> (lambda_r, lambda_1)
    levels: list[float]  # reported compression exponents (10^x)
    imp_levels: list[float]  # IMP trajectory (starts below the first reported level)
    prunings: list[str] = field(default_factory=lambda: ["magnitude", "imp"])
    dense_epochs: int = 10
    finetune_epochs: int = 3
    optimizer: str = "adam"
    lr: float = 1e-3
    finetune_lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    batch_size: int = 128
    lambda_r_warmup_epochs: int = 0
    max_steps_per_epoch: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    data_root: str | None = None
    num_workers: int = 0  # data loading only: not part of the results' key

    def train_config(self, seed: int, lambda_r: float = 0.0, lambda_1: float = 0.0, finetune: bool = False) -> TrainConfig:
        return TrainConfig(
            epochs=self.finetune_epochs if finetune else self.dense_epochs,
            batch_size=self.batch_size, optimizer=self.optimizer,
            lr=(self.finetune_lr or self.lr) if finetune else self.lr,
            momentum=self.momentum, weight_decay=self.weight_decay, schedule=self.schedule,
            lambda_r=lambda_r, lambda_1=lambda_1,
            lambda_r_warmup_epochs=0 if finetune else self.lambda_r_warmup_epochs,
            seed=seed, device="cpu", max_steps_per_epoch=self.max_steps_per_epoch,
        )

    def tag(self) -> str:
        """Short key of the training budget, so units of different budgets never mix."""
        parts = [f"e{self.dense_epochs}", f"ft{self.finetune_epochs}", self.optimizer, f"lr{self.lr:g}"]
        if self.finetune_lr:
            parts.append(f"ftlr{self.finetune_lr:g}")
        if self.max_steps_per_epoch:
            parts.append(f"steps{self.max_steps_per_epoch}")
        if self.train_subset:
            parts.append(f"n{self.train_subset}")
        if self.lambda_r_warmup_epochs:
            parts.append(f"wu{self.lambda_r_warmup_epochs}")
        if self.weight_decay:
            parts.append(f"wd{self.weight_decay:g}")
        if self.batch_size != 128:
            parts.append(f"bs{self.batch_size}")
        if self.test_subset:
            parts.append(f"t{self.test_subset}")
        return "_".join(parts)


# --- data ----------------------------------------------------------------------------


@functools.cache
def _splits(dataset: str, data_root: str | None, train_subset: int | None, test_subset: int | None) -> DataSplits:
    if dataset == "fake-cifar":  # stand-in with CIFAR-10's shapes (random images): tests the code path only
        generator = torch.Generator().manual_seed(0)
        def fake(n: int) -> TensorDataset:
            return TensorDataset(torch.randn(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator))
        splits = DataSplits(fake(train_subset or 256), fake(test_subset or 128), (3, 32, 32), 10, "fake-cifar")
    else:
        splits = load_dataset(dataset, data_root=data_root)
    if train_subset and len(splits.train) > train_subset:
        splits = DataSplits(Subset(splits.train, range(train_subset)), splits.test, splits.input_shape,
                            splits.num_classes, splits.name)
    if test_subset and len(splits.test) > test_subset:
        splits = DataSplits(splits.train, Subset(splits.test, range(test_subset)), splits.input_shape,
                            splits.num_classes, splits.name)
    return splits


def splits_of(p: Protocol) -> DataSplits:
    return _splits(p.dataset, p.data_root, p.train_subset, p.test_subset)


def loaders(p: Protocol, seed: int) -> tuple[DataLoader, DataLoader]:
    return make_loaders(splits_of(p), p.batch_size, seed=seed, num_workers=p.num_workers)


# --- models on disk ----------------------------------------------------------------------


def new_model(p: Protocol, name: str, seed: int) -> torch.nn.Module:
    seed_everything(seed)
    splits = splits_of(p)
    return build_model(name, splits.num_classes, splits.input_shape)


def load_model(p: Protocol, name: str, path: Path) -> torch.nn.Module:
    """A model from a state dict, with the ``torch.nn.utils.prune`` masks it was saved with."""
    model = new_model(p, name, 0)
    state = torch.load(path, map_location="cpu", weights_only=True)
    names = {module: prefix for prefix, module in model.named_modules()}
    params = prunable_parameters(model)
    mask_keys = [f"{names[m]}.{n}_mask".lstrip(".") for m, n in params]
    if any(k in state for k in mask_keys):
        apply_masks(params, [state[k].bool() for k in mask_keys])
    model.load_state_dict(state)
    return model


def model_path(out: Path, *key: Any) -> Path:
    """``<out>/models/<unit name>.pt``: the state dict that goes with a unit's JSON."""
    return Path(out) / "models" / (unit_path(out, *key).stem + ".pt")


# --- measurements ----------------------------------------------------------------------------


def connectivity(model: torch.nn.Module, input_shape) -> dict:
    rep = analyze(trace(model, input_shape=tuple(input_shape)))
    return {
        "nominal_compression": rep.nominal_compression, "effective_compression": rep.effective_compression,
        "log_phi": rep.log_phi, "disconnected": rep.disconnected, "n_collapsed": len(rep.collapsed_layers),
        "collapsed_layers": rep.collapsed_layers, "n_cut": len(rep.cut_layers), "cut_layers": rep.cut_layers,
        "dead": rep.dead, "alive": rep.alive, "nonzero": rep.nonzero, "parameters": rep.parameters,
    }


def accuracy(model: torch.nn.Module, test_loader: DataLoader) -> float:
    return evaluate(model, test_loader, CPU)["accuracy"]


# --- units -------------------------------------------------------------------------------------


def dense_key(p: Protocol, model: str, reg: str, seed: int) -> tuple:
    lambda_r, lambda_1 = p.regs[reg]
    return ("dense", p.dataset, model, reg, f"lr{lambda_r:g}", f"l1{lambda_1:g}", p.tag(), f"seed{seed}")


def dense_unit(out: Path, p: Protocol, model_name: str, reg: str, seed: int) -> dict:
    """Train dense with ``reg`` (stored: JSON record + state dict)."""
    key = dense_key(p, model_name, reg, seed)
    path = model_path(out, *key)

    def compute() -> dict:
        lambda_r, lambda_1 = p.regs[reg]
        model = new_model(p, model_name, seed)
        splits = splits_of(p)
        regularizer = CoNNect(model, input_shape=splits.input_shape) if lambda_r > 0 else None
        train_loader, test_loader = loaders(p, seed)
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = train(model, train_loader, test_loader, p.train_config(seed, lambda_r, lambda_1),
                           regularizer=regularizer, progress=False)
        atomic_torch_save(model.state_dict(), path)
        with torch.no_grad():
            r_value = float(CoNNect(model, input_shape=splits.input_shape)())
            l1 = float(l1_penalty(model))
        return {"model": model_name, "reg": reg, "lambda_r": lambda_r, "lambda_1": lambda_1, "seed": seed,
                "dense_accuracy": result.final_accuracy, "connect_R": r_value, "l1_norm": l1,
                "train_seconds": time.perf_counter() - started,
                "history": [{k: h.get(k) for k in ("epoch", "task_loss", "reg", "l1", "test_accuracy")}
                            for h in result.history],
                **{f"dense_{k}": v for k, v in connectivity(model, splits.input_shape).items()
                   if k in ("log_phi", "effective_compression", "dead")}}

    record = run_unit(out, key, compute, companions=[path])  # weights gone: retrain
    record["state_path"] = str(path)
    return record


def _finetune(p: Protocol, model: torch.nn.Module, seed: int) -> float:
    train_loader, test_loader = loaders(p, seed)
    if p.finetune_epochs == 0:
        return accuracy(model, test_loader)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train(model, train_loader, test_loader, p.train_config(seed, finetune=True), progress=False).final_accuracy


def oneshot_unit(out: Path, p: Protocol, model_name: str, reg: str, seed: int, x: float, dense: dict,
                 method: str = "magnitude") -> dict:
    key = (method, *dense_key(p, model_name, reg, seed)[1:], f"x{x:g}")

    def compute() -> dict:
        model = load_model(p, model_name, Path(dense["state_path"]))
        params = prunable_parameters(model)
        METHODS[method].prune(model, params, compression=10**x)
        _, test_loader = loaders(p, seed)
        before = accuracy(model, test_loader)
        conn = connectivity(model, splits_of(p).input_shape)
        after = _finetune(p, model, seed)
        return _record(model_name, reg, seed, method, x, dense, before, after, conn)

    return run_unit(out, key, compute)


def imp_units(out: Path, p: Protocol, model_name: str, reg: str, seed: int, dense: dict) -> list[dict]:
    """The IMP trajectory, one unit per level (each stores its fine-tuned state for the next)."""
    records = []
    previous = Path(dense["state_path"])
    for x in p.imp_levels:
        key = ("imp", *dense_key(p, model_name, reg, seed)[1:], "L" + "-".join(f"{v:g}" for v in p.imp_levels), f"x{x:g}")
        state_path = model_path(out, *key)

        def compute(previous=previous, x=x, state_path=state_path) -> dict:
            model = load_model(p, model_name, previous)  # previous level's fine-tuned net (or W*)
            params = prunable_parameters(model)
            rewind = torch.load(dense["state_path"], map_location="cpu", weights_only=True)  # W*
            # one IMP round: (already trained) -> prune by magnitude -> rewind to W*, keeping masks
            iterative_magnitude(model, params, train_fn=lambda m: None, rounds=1, compression=10**x,
                                rewind_state=rewind)
            _, test_loader = loaders(p, seed)
            before = accuracy(model, test_loader)
            conn = connectivity(model, splits_of(p).input_shape)
            after = _finetune(p, model, seed)
            atomic_torch_save(model.state_dict(), state_path)
            return _record(model_name, reg, seed, "imp", x, dense, before, after, conn)

        records.append(run_unit(out, key, compute, companions=[state_path]))
        previous = state_path
    return records


def _record(model_name, reg, seed, pruning, x, dense, before, after, conn) -> dict:
    return {"model": model_name, "reg": reg, "lambda_r": dense["lambda_r"], "lambda_1": dense["lambda_1"],
            "seed": seed, "pruning": pruning, "x": x, "target_compression": 10**x,
            "dense_accuracy": dense["dense_accuracy"], "accuracy_before_finetune": before,
            "accuracy_after_finetune": after, **conn}


# --- the whole experiment ------------------------------------------------------------------------


def run(out: Path, p: Protocol) -> tuple[list[dict], list[dict]]:
    """Every unit of the protocol (finished ones are loaded); returns (dense, pruned) records."""
    dense_records, pruned = [], []
    for seed in p.seeds:
        for model_name in p.models:
            for reg in p.regs:
                dense = dense_unit(out, p, model_name, reg, seed)
                dense_records.append(dense)
                for method in ("magnitude", "magnitude_layerwise"):
                    if method in p.prunings:
                        pruned += [oneshot_unit(out, p, model_name, reg, seed, x, dense, method) for x in p.levels]
                if "imp" in p.prunings:
                    pruned += imp_units(out, p, model_name, reg, seed, dense)
    return dense_records, pruned


def tables(out: Path, p: Protocol, dense: list[dict], pruned: list[dict]) -> dict[str, str]:
    md = {}
    # dense
    dense_rows = []
    for model_name in p.models:
        for reg in p.regs:
            group = [d for d in dense if (d["model"], d["reg"]) == (model_name, reg)]
            if group:
                dense_rows.append({"model": model_name, "regularizer": reg, "lambda_r": group[0]["lambda_r"],
                                   "lambda_1": group[0]["lambda_1"], "seeds": len(group),
                                   "dense acc. %": pm(d["dense_accuracy"] for d in group),
                                   "CoNNect R": _pm_raw(d["connect_R"] for d in group),
                                   "L1 norm": _pm_raw((d["l1_norm"] for d in group), 0),
                                   "train s": f"{mean_std(d['train_seconds'] for d in group)[0]:.0f}"})
    dense_csv = [{k: v for k, v in d.items() if k not in ("history", "state_path")} for d in dense]
    write_table(out, "dense", dense_csv, md_rows=dense_rows, md_columns=list(dense_rows[0]) if dense_rows else None)
    md["dense"] = _md(dense_rows)
    # pruned: model x reg x pruning x compression
    cols = ["model", "reg", "lambda_r", "lambda_1", "seed", "pruning", "x", "target_compression", "dense_accuracy",
            "accuracy_before_finetune", "accuracy_after_finetune", "nominal_compression", "effective_compression",
            "log_phi", "disconnected", "n_collapsed", "n_cut", "dead", "collapsed_layers", "cut_layers"]
    rows = []
    for model_name in p.models:
        for pruning in p.prunings:
            for x in p.levels:
                for reg in p.regs:
                    group = [r for r in pruned if (r["model"], r["pruning"], r["x"], r["reg"]) == (model_name, pruning, x, reg)]
                    if not group:
                        continue
                    n = len(group)
                    rows.append({
                        "model": model_name, "pruning": pruning, "compression": f"{10**x:.3g}x", "regularizer": reg,
                        "acc. before FT %": pm(r["accuracy_before_finetune"] for r in group),
                        "acc. after FT %": pm(r["accuracy_after_finetune"] for r in group),
                        "eff. compression": _eff(group),
                        "collapsed runs": f"{sum(r['n_collapsed'] > 0 for r in group)}/{n}",
                        "disconnected runs": f"{sum(bool(r['disconnected']) for r in group)}/{n}",
                        "collapsed layers (mean)": fmt(mean_std(r["n_collapsed"] for r in group)[0], 2),
                        "log phi": _pm_raw(r["log_phi"] for r in group),
                    })
    write_table(out, "pruned", pruned, cols, md_rows=rows, md_columns=list(rows[0]) if rows else None)
    md["pruned"] = _md(rows)
    return md


def _md(rows: list[dict]) -> str:
    return markdown_table(rows) + "\n" if rows else "(no rows)\n"


def _pm_raw(values, digits: int = 2) -> str:
    values = list(values)
    mean, std, n = mean_std(values)
    if n == 0:
        return "-inf" if values else "–"
    text = f"{mean:.{digits}f} ± {std:.{digits}f}"
    return text if n == len(values) else f"{text} ({len(values) - n} disc.)"


def _eff(group: list[dict]) -> str:
    values = [r["effective_compression"] for r in group]
    mean, _, n = mean_std(values)
    if n == 0:
        return "inf"
    text = f"{mean:.3g}x"
    return text if n == len(values) else text + f" ({len(values) - n} inf)"


def headline(pruned: list[dict], dense: list[dict], model: str = "lenet300", x: float = 2.0) -> str:
    """The issue's "one real result": LeNet-300-100 with/without CoNNect, magnitude-pruned to 100x."""
    lines = ["| regularizer | dense acc. % | pruning | acc. before FT % | acc. after FT % | collapsed runs | disconnected runs | eff. compression |",
             "|---|---|---|---|---|---|---|---|"]
    for pruning in ("magnitude", "magnitude_layerwise", "imp"):
        for reg in ("none", "connect", "l1"):
            group = [r for r in pruned if (r["model"], r["reg"], r["pruning"], r["x"]) == (model, reg, pruning, x)]
            if not group:
                continue
            d = [r for r in dense if (r["model"], r["reg"]) == (model, reg)]
            n = len(group)
            lines.append(f"| {reg} | {pm(r['dense_accuracy'] for r in d)} | {pruning} | "
                         f"{pm(r['accuracy_before_finetune'] for r in group)} | {pm(r['accuracy_after_finetune'] for r in group)} | "
                         f"{sum(r['n_collapsed'] > 0 for r in group)}/{n} | {sum(bool(r['disconnected']) for r in group)}/{n} | {_eff(group)} |")
    if len(lines) == 2:
        return f"(no {model} run at {10**x:.3g}x in this output)\n"
    return "\n".join(lines) + "\n"


def figure(out: Path, p: Protocol, pruned: list[dict], name: str, copy: bool, title: str) -> list[Path]:
    with mpl_style():
        fig = new_figure(4.2 * len(p.prunings), 3.3 * len(p.models))
        axes = fig.subplots(len(p.models), len(p.prunings), squeeze=False, sharey="row")
        for i, model_name in enumerate(p.models):
            for j, pruning in enumerate(p.prunings):
                ax = axes[i][j]
                for reg in p.regs:
                    color = REG_COLORS.get(reg)
                    for key, ls, label in (("accuracy_after_finetune", "-", f"{reg} (after FT)"),
                                           ("accuracy_before_finetune", ":", f"{reg} (before FT)")):
                        xs, means, stds = [], [], []
                        for x in p.levels:
                            group = [r for r in pruned if (r["model"], r["pruning"], r["x"], r["reg"]) == (model_name, pruning, x, reg)]
                            if group:
                                m, s, _ = mean_std(r[key] for r in group)
                                xs.append(10**x), means.append(100 * m), stds.append(100 * s)
                                if key == "accuracy_after_finetune" and any(r["n_collapsed"] or r["disconnected"] for r in group):
                                    ax.plot([10**x], [100 * m], marker="X", ms=9, color=color, mec="white", ls="")
                        if not xs:
                            continue
                        ax.plot(xs, means, ls=ls, marker="o" if ls == "-" else None, ms=3.5, color=color,
                                label=label if ls == "-" or (i == 0 and j == 0) else None)
                        if ls == "-":
                            ax.fill_between(xs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                                            color=color, alpha=0.15, lw=0)
                ax.set_xscale("log")
                titles = {"magnitude": "one-shot global magnitude", "magnitude_layerwise": "one-shot layerwise magnitude",
                          "imp": "IMP (rewind to trained)"}
                ax.set_title(f"{model_name}, {titles.get(pruning, pruning)}", fontsize=9)
                ax.set_xlabel("compression (total / remaining weights)")
                if j == 0:
                    ax.set_ylabel("test accuracy %")
                ax.grid(True, alpha=0.4)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize=8)
        fig.suptitle(title + "\n(solid: after fine-tuning, mean ± std over seeds; dotted: before; X: a seed collapsed a layer or disconnected)", fontsize=9)
        return save_figure(fig, out, name, copy)


def add_protocol_args(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """Options shared by the regularizer scripts (defaults differ per script)."""
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke run (fewer seeds/epochs/levels)")
    add("--out", type=Path, default=None)
    add("--models", default=defaults["models"])
    add("--seeds", type=int, default=None, help=f"number of seeds (default {defaults['seeds']})")
    add("--lambda-r", type=float, default=defaults["lambda_r"], help="CoNNect weight lambda_R")
    add("--lambda-1", type=float, default=defaults["lambda_1"], help="L1 weight lambda_1")
    add("--regs", default="none,connect,l1", help="regularizers to compare (none, connect, l1)")
    add("--prunings", default="magnitude,imp", help="any of magnitude (global), magnitude_layerwise, imp")
    add("--levels", type=lambda s: [float(v) for v in s.split(",")], default=None,
        help="compression exponents x (10^x) to report, default 1,1.5,2,2.5,3")
    add("--dense-epochs", type=int, default=defaults["dense_epochs"])
    add("--finetune-epochs", type=int, default=defaults["finetune_epochs"])
    add("--optimizer", default=defaults["optimizer"], choices=["adam", "sgd"])
    add("--lr", type=float, default=defaults["lr"])
    add("--finetune-lr", type=float, default=defaults.get("finetune_lr"))
    add("--weight-decay", type=float, default=defaults.get("weight_decay", 0.0))
    add("--batch-size", type=int, default=defaults.get("batch_size", 128))
    add("--warmup", type=int, default=0, help="epochs over which lambda_R ramps up")
    add("--max-steps-per-epoch", type=int, default=None)
    add("--threads", type=int, default=1)
    add("--workers", type=int, default=0, help="data-loading worker processes")
    add("--tune", action="store_true",
        help="lambda sweep instead of the experiment: 1 seed, dense training + one-shot pruning without FT")
    add("--tune-lambda-r", default="0.03,0.1,0.3,1", help="lambda_R values of --tune")
    add("--tune-lambda-1", default="1e-6,3e-6,1e-5,3e-5", help="lambda_1 values of --tune")


def protocol_from_args(args: argparse.Namespace, dataset: str, quick: dict, data_root: str | None = None) -> Protocol:
    levels = args.levels or ([1.0, 2.0, 3.0] if args.quick else [1.0, 1.5, 2.0, 2.5, 3.0])
    # IMP removes the same fraction each round: a 10^0.5 step from just below the first level
    start = levels[0] - 0.5 if levels[0] > 0.5 else levels[0]
    imp_levels = sorted({round(start + 0.5 * k, 6) for k in range(int(round((levels[-1] - start) / 0.5)) + 1)} | set(levels))
    regs_all = {"none": (0.0, 0.0), "connect": (args.lambda_r, 0.0), "l1": (0.0, args.lambda_1)}
    regs = {name: regs_all[name] for name in args.regs.split(",")}
    seeds = args.seeds or (quick["seeds"] if args.quick else 3)
    return Protocol(
        dataset=dataset, models=args.models.split(","), seeds=list(range(seeds)), regs=regs, levels=levels,
        imp_levels=imp_levels, prunings=args.prunings.split(","),
        dense_epochs=quick.get("dense_epochs", args.dense_epochs) if args.quick else args.dense_epochs,
        finetune_epochs=quick.get("finetune_epochs", args.finetune_epochs) if args.quick else args.finetune_epochs,
        optimizer=args.optimizer, lr=args.lr, finetune_lr=args.finetune_lr, weight_decay=args.weight_decay,
        batch_size=args.batch_size, lambda_r_warmup_epochs=args.warmup,
        max_steps_per_epoch=args.max_steps_per_epoch or (quick.get("max_steps_per_epoch") if args.quick else None),
        train_subset=quick.get("train_subset") if args.quick else None,
        test_subset=quick.get("test_subset") if args.quick else None,
        data_root=data_root, num_workers=args.workers,
    )


# --- lambda tuning ---------------------------------------------------------------------------------


def tune(out: Path, p: Protocol, lambdas_r: list[float], lambdas_1: list[float]) -> str:
    """1 seed: dense accuracy, R and L1 after training, and one-shot magnitude pruning at each
    level without fine-tuning, for a few lambda values (dense units are reused by the main run)."""
    rows = []
    seed = p.seeds[0]
    candidates = [("none", 0.0, 0.0)] + [("connect", lr, 0.0) for lr in lambdas_r] + [("l1", 0.0, l1) for l1 in lambdas_1]
    for model_name in p.models:
        for reg, lambda_r, lambda_1 in candidates:
            q = Protocol(**{**asdict(p), "regs": {reg: (lambda_r, lambda_1)}})
            dense = dense_unit(out, q, model_name, reg, seed)
            row = {"model": model_name, "reg": reg, "lambda_r": lambda_r, "lambda_1": lambda_1,
                   "dense acc. %": f"{100 * dense['dense_accuracy']:.1f}", "CoNNect R": f"{dense['connect_R']:.2f}",
                   "L1 norm": f"{dense['l1_norm']:.0f}"}
            for x in p.levels:
                key = ("tune", *dense_key(q, model_name, reg, seed)[1:], f"x{x:g}")

                def compute(dense=dense, x=x, model_name=model_name) -> dict:
                    model = load_model(q, model_name, Path(dense["state_path"]))
                    METHODS["magnitude"].prune(model, prunable_parameters(model), compression=10**x)
                    _, test_loader = loaders(q, seed)
                    return {"accuracy": accuracy(model, test_loader), **connectivity(model, splits_of(q).input_shape)}

                r = run_unit(out, key, compute, log=False)
                flag = " C" if r["n_collapsed"] else ""
                flag += " D" if r["disconnected"] else ""
                row[f"{10**x:.3g}x acc. % (no FT)"] = f"{100 * r['accuracy']:.1f}{flag}"
            rows.append(row)
    return write_table(out, "tune", rows)
