"""Engine of the regularizer experiments (analysis/regularizer_study.py, regularizer_cifar.py):
train dense with a regularizer, prune by global magnitude (one-shot) and by iterative
magnitude pruning (IMP), fine-tune, and tabulate accuracy and connectivity.

Protocol, per model x regularizer x seed
    1. dense: seed, build the model, train ``dense_epochs`` with
       ``task + lambda_r * CoNNect + lambda_1 * L1`` (``netgraph.training.engine.train``);
    2. one-shot: for each compression ``10^x``, prune the trained weights W* with a
       method of ``METHODS`` (global or layerwise magnitude, the CoNNect score), evaluate ("before FT"),
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

Lambdas are chosen by :func:`tune` on a validation split carved from the training
data (``Protocol(validation=True)``, :func:`validation_split`), never on the test set.
An :class:`Arm` is one dense-training recipe (regulariser weights, optionally its own
optimiser or CoNNect decoupled from it); :func:`run_arm` runs one arm and seed.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
#: the CSV columns of a pruned record (``pruned.csv``)
PRUNED_COLUMNS = ["model", "reg", "lambda_r", "lambda_1", "seed", "pruning", "x", "target_compression", "dense_accuracy",
                  "accuracy_before_finetune", "accuracy_after_finetune", "nominal_compression", "effective_compression",
                  "log_phi", "disconnected", "n_collapsed", "n_cut", "dead", "collapsed_layers", "cut_layers"]
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
    #: train on 7/8 of the training set and evaluate on the other 1/8 (:func:`validation_split`):
    #: lambdas are chosen on it, never on the test set
    validation: bool = False
    #: CoNNect as its own step outside the optimiser (``TrainConfig.decoupled_reg``)
    decoupled_reg: bool = False
    finetune_optimizer: str | None = None  # default: ``optimizer``
    score_iterations: int | None = None  # rounds of the iterated scores (CoNNect); None: the method's (100)
    num_workers: int = 0  # data loading only: not part of the results' key

    def train_config(self, seed: int, lambda_r: float = 0.0, lambda_1: float = 0.0, finetune: bool = False) -> TrainConfig:
        return TrainConfig(
            epochs=self.finetune_epochs if finetune else self.dense_epochs,
            batch_size=self.batch_size,
            optimizer=(self.finetune_optimizer or self.optimizer) if finetune else self.optimizer,
            lr=(self.finetune_lr or self.lr) if finetune else self.lr,
            momentum=self.momentum, weight_decay=self.weight_decay, schedule=self.schedule,
            lambda_r=lambda_r, lambda_1=lambda_1,
            lambda_r_warmup_epochs=0 if finetune else self.lambda_r_warmup_epochs,
            decoupled_reg=self.decoupled_reg, seed=seed, device="cpu", max_steps_per_epoch=self.max_steps_per_epoch,
        )

    def tag(self) -> str:
        """Short key of the training budget, so units of different budgets never mix."""
        parts = [f"e{self.dense_epochs}", f"ft{self.finetune_epochs}", self.optimizer, f"lr{self.lr:g}"]
        if self.finetune_optimizer and self.finetune_optimizer != self.optimizer:
            parts.append(f"ft{self.finetune_optimizer}")
        if self.finetune_lr:
            parts.append(f"ftlr{self.finetune_lr:g}")
        if self.decoupled_reg:
            parts.append("dec")
        if self.validation:
            parts.append("val")
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


def validation_split(splits: DataSplits, seed: int = 0) -> DataSplits:
    """``splits`` with its training set cut 7/8 : 1/8 (a fixed permutation drawn with
    ``seed``; mnist5k: 3500 / 500) and the 1/8 as the "test" set: hyperparameters are
    chosen on it, so the test set is read only by the final runs."""
    n = len(splits.train)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    cut = n - n // 8
    return DataSplits(Subset(splits.train, order[:cut]), Subset(splits.train, order[cut:]), splits.input_shape,
                      splits.num_classes, splits.name + "-validation")


@functools.cache
def _splits(dataset: str, data_root: str | None, train_subset: int | None, test_subset: int | None,
            validation: bool = False) -> DataSplits:
    if dataset == "fake-cifar":  # stand-in with CIFAR-10's shapes (random images): tests the code path only
        generator = torch.Generator().manual_seed(0)
        def fake(n: int) -> TensorDataset:
            return TensorDataset(torch.randn(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator))
        splits = DataSplits(fake(train_subset or 256), fake(test_subset or 128), (3, 32, 32), 10, "fake-cifar")
    else:
        splits = load_dataset(dataset, data_root=data_root)
    if validation:
        splits = validation_split(splits)
    if train_subset and len(splits.train) > train_subset:
        splits = DataSplits(Subset(splits.train, range(train_subset)), splits.test, splits.input_shape,
                            splits.num_classes, splits.name)
    if test_subset and len(splits.test) > test_subset:
        splits = DataSplits(splits.train, Subset(splits.test, range(test_subset)), splits.input_shape,
                            splits.num_classes, splits.name)
    return splits


def splits_of(p: Protocol) -> DataSplits:
    return _splits(p.dataset, p.data_root, p.train_subset, p.test_subset, p.validation)


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
    iterated = METHODS[method].default_iterations > 1 and p.score_iterations
    key = (method, *dense_key(p, model_name, reg, seed)[1:], f"x{x:g}", *([f"it{p.score_iterations}"] if iterated else []))

    def compute() -> dict:
        model = load_model(p, model_name, Path(dense["state_path"]))
        params = prunable_parameters(model)
        METHODS[method].prune(model, params, compression=10**x, input_shape=splits_of(p).input_shape,
                              iterations=p.score_iterations)
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
    write_table(out, "pruned", pruned, PRUNED_COLUMNS, md_rows=rows, md_columns=list(rows[0]) if rows else None)
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
        help="choose the lambdas instead of running the experiment (tune(): validation split, 100x global "
             "magnitude + fine-tuning, first seed)")
    add("--tune-lambda-r", default="0.03,0.1,0.3,1", help="lambda_R values of --tune")
    add("--tune-lambda-1", default="1e-6,3e-6,1e-5,3e-5", help="lambda_1 values of --tune")


def protocol_from_args(args: argparse.Namespace, dataset: str, quick: dict, data_root: str | None = None) -> Protocol:
    levels = args.levels or ([1.0, 2.0, 3.0] if args.quick else [1.0, 1.5, 2.0, 2.5, 3.0])
    regs_all = {"none": (0.0, 0.0), "connect": (args.lambda_r, 0.0), "l1": (0.0, args.lambda_1)}
    regs = {name: regs_all[name] for name in args.regs.split(",")}
    seeds = args.seeds or (quick["seeds"] if args.quick else 3)
    return Protocol(
        dataset=dataset, models=args.models.split(","), seeds=list(range(seeds)), regs=regs, levels=levels,
        imp_levels=imp_levels(levels), prunings=args.prunings.split(","),
        dense_epochs=quick.get("dense_epochs", args.dense_epochs) if args.quick else args.dense_epochs,
        finetune_epochs=quick.get("finetune_epochs", args.finetune_epochs) if args.quick else args.finetune_epochs,
        optimizer=args.optimizer, lr=args.lr, finetune_lr=args.finetune_lr, weight_decay=args.weight_decay,
        batch_size=args.batch_size, lambda_r_warmup_epochs=args.warmup,
        max_steps_per_epoch=args.max_steps_per_epoch or (quick.get("max_steps_per_epoch") if args.quick else None),
        train_subset=quick.get("train_subset") if args.quick else None,
        test_subset=quick.get("test_subset") if args.quick else None,
        data_root=data_root, num_workers=args.workers,
    )


# --- arms and lambda tuning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Arm:
    """One way of training the dense net: regulariser weights and, where it differs from
    the protocol's, the optimiser of the dense training (fine-tuning keeps the protocol's)."""

    name: str
    lambda_r: float = 0.0
    lambda_1: float = 0.0
    optimizer: str | None = None
    lr: float | None = None
    decoupled: bool = False

    def protocol(self, base: Protocol) -> Protocol:
        changes: dict[str, Any] = {"regs": {self.name: (self.lambda_r, self.lambda_1)}, "decoupled_reg": self.decoupled}
        if self.optimizer and self.optimizer != base.optimizer:
            changes |= {"optimizer": self.optimizer, "lr": self.lr or base.lr,
                        "finetune_optimizer": base.finetune_optimizer or base.optimizer,
                        "finetune_lr": base.finetune_lr or base.lr}
        return replace(base, **changes)


def imp_levels(levels: list[float]) -> list[float]:
    """IMP's trajectory: one round per factor 10^0.5 from 10^0.5 to the last level, plus the levels."""
    steps = round(max(levels) / 0.5)
    return sorted({round(0.5 * k, 6) for k in range(1, steps + 1)} | set(levels))


def run_arm(out: Path, base: Protocol, arm: Arm, model: str, seed: int, levels: list[float],
            prunings: Sequence[str]) -> tuple[dict, list[dict]]:
    """Dense training of ``arm`` and every pruned level (records carry ``arm``)."""
    p = replace(arm.protocol(base), levels=levels, imp_levels=imp_levels(levels))
    dense = dense_unit(out, p, model, arm.name, seed)
    pruned = []
    for method in prunings:
        if method == "imp":
            pruned += [r for r in imp_units(out, p, model, arm.name, seed, dense) if r["x"] in levels]
        else:
            pruned += [oneshot_unit(out, p, model, arm.name, seed, x, dense, method) for x in levels]
    return dense | {"arm": arm.name}, [r | {"arm": arm.name} for r in pruned]


def tune(out: Path, base: Protocol, models: Sequence[str], seeds: Sequence[int], lambdas_1: Sequence[float],
         lambdas_r: Sequence[float], name: str = "tune") -> tuple[dict[str, dict[str, Arm]], str]:
    """Choose the lambdas of each model on the validation split (:func:`validation_split`;
    the test set is not read). Criterion: validation accuracy after global magnitude
    pruning to 100x and ``base.finetune_epochs`` of fine-tuning, mean over ``seeds``.

    L1 takes the best of ``lambdas_1``, CoNNect the best of ``lambdas_r``, L1 + CoNNect
    the chosen lambda_1 plus the best of ``lambdas_r``; "matched L1" is the lambda_1
    whose dense validation accuracy is closest to the chosen L1 + CoNNect's (is the
    combination better than L1 that costs as much dense accuracy?).
    Returns ``{model: {arm name: Arm}}`` and the markdown of ``<out>/<name>.md``.
    """
    val = replace(base, validation=True)
    chosen: dict[str, dict[str, Arm]] = {}
    rows: list[dict] = []

    def score(model: str, arm: Arm) -> dict:
        runs = [run_arm(out, val, arm, model, seed, [2.0], ["magnitude"]) for seed in seeds]
        row = {"model": model, "candidate": arm.name, "lambda_r": arm.lambda_r, "lambda_1": arm.lambda_1,
               "dense": statistics.fmean(d["dense_accuracy"] for d, _ in runs),
               "pruned": statistics.fmean(r[0]["accuracy_after_finetune"] for _, r in runs)}
        rows.append(row)
        return row

    for model in models:
        score(model, Arm("none"))
        l1 = [score(model, Arm(f"l1 {lam:g}", lambda_1=lam)) for lam in lambdas_1]
        connect = [score(model, Arm(f"connect {lam:g}", lambda_r=lam)) for lam in lambdas_r]
        best_l1 = max(l1, key=lambda r: r["pruned"])["lambda_1"]
        both = [score(model, Arm(f"l1 {best_l1:g} + connect {lam:g}", lambda_r=lam, lambda_1=best_l1))
                for lam in lambdas_r]
        best_both = max(both, key=lambda r: r["pruned"])
        matched = min(l1, key=lambda r: abs(r["dense"] - best_both["dense"]))
        chosen[model] = {
            "none": Arm("none"),
            "L1": Arm("L1", lambda_1=best_l1),
            "CoNNect": Arm("CoNNect", lambda_r=max(connect, key=lambda r: r["pruned"])["lambda_r"]),
            "L1 + CoNNect": Arm("L1 + CoNNect", lambda_r=best_both["lambda_r"], lambda_1=best_l1),
            "matched L1": Arm("matched L1", lambda_1=matched["lambda_1"]),
        }
    table = [{"model": r["model"], "candidate": r["candidate"], "dense val. acc. %": f"{100 * r['dense']:.1f}",
              "100x + FT val. acc. %": f"{100 * r['pruned']:.1f}",
              "chosen as": ", ".join(name for name, arm in chosen[r["model"]].items() if name != "none"
                                     and (arm.lambda_r, arm.lambda_1) == (r["lambda_r"], r["lambda_1"]))}
             for r in rows]
    return chosen, write_table(out, name, table)
