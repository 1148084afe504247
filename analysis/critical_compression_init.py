#!/usr/bin/env python
"""Experiment (a): data-free critical compression at initialisation.

Claim reproduced
    Pruning at initialisation without data, random and (global) magnitude scores
    make a layer collapse (no weight left) or disconnect the network at moderate
    compression, while iterative SynFlow and iterative CoNNect (path-mass share)
    keep every layer and the input->output connectivity up to much higher
    compression (SynFlow's "layer collapse" claim, Tanaka et al. 2020, and
    CoNNect's "connected by construction"). Collapse and connectivity depend only
    on the weights, so no data is read: the models are CIFAR-shaped
    ``vgg16_bn_cifar`` (14.7M prunable weights) and ``resnet20`` (0.27M).

    SynFlow's own setting: ``--models vgg16_bn_synflow`` is their VGG-16-BN
    (``lottery_vgg``: conv biases, He fan-in init, 100 classes for CIFAR-100,
    14.76M prunable weights in 14 layers) on their grid 10^0, 10^0.25, ..., 10^6.
    Its critical exponents are set against SynFlow's published ones (``ANCHORS``,
    read from the per-layer tables in their repository) in ``anchors.md`` and the
    ``*_anchors.png`` figure. SynFlow prunes the conv and Linear weights only (no
    bias, no BN: ``prune_bias`` / ``prune_batchnorm`` false), masks globally, and
    calls a run's critical compression the largest grid level at which every weight
    layer keeps a weight: our ``no_collapse`` criterion at grid resolution.

    For every model, method, seed and compression ``10^x`` (x = 0.5, 0.75, ...,
    up to 6 or the largest level that leaves a weight) the script records the
    collapsed and cut layers, the disconnected flag, nominal and effective
    compression, dead weights and ``log phi`` (``netgraph.connectivity.report.analyze``). The
    **critical compression exponent** of a run is the largest x at which no layer
    has collapsed and the net is connected (``strict``); ``connected`` asks only for
    an input->output path and ``no_collapse`` (SynFlow's definition) only that every
    layer keeps a weight. Masks only ever shrink, so each state
    is monotone in x; after the grid pass the interval between the last good and
    the first bad level is bisected ("finer near the collapse"): the refined
    exponent is ``log10(total / kept)`` of the last good state found.

Protocols (``--protocol``)
    nested (default)  one trajectory per (model, method, seed). One-shot methods
        (random, magnitude) score once and keep the top-k at every level (their
        masks are nested, so this equals a separate prune per level). Iterative
        methods (synflow, connect) follow SynFlow's exponential schedule of
        ``--rounds`` rounds (default 100) from dense to the model's largest level,
        with an extra stop at every grid level, re-scoring after every round; the
        level-10^x state is the state where the trajectory passes 10^x. This is
        not the paper's "100 rounds per target" (a target 10^x gets about
        100 * x / x_max rounds here), but it costs one run instead of one per level;
        near the critical point (x close to x_max) the two agree in round count.
    per-target  the paper's protocol: every level is its own prune from the dense
        init, iterative methods with ``--rounds`` rounds each. About 20x dearer;
        use ``--levels`` to check a few levels around the critical point.

    Selection is ``netgraph.pruning``'s ``select_mask`` (global top-k, ties to the
    lower flat index, a k-th value threshold instead of a full sort). Scores are ``METHODS[name].score`` from the library;
    pruned weights are zeroed in place, which at initialisation is the same as
    masking them (every score reads the effective weight, and pruned weights are
    never revived).

Run
    python analysis/critical_compression_init.py            # full run
    python analysis/critical_compression_init.py --quick    # smoke run, ~1-2 min
    python analysis/critical_compression_init.py --models vgg16_bn_synflow   # SynFlow's setting
    ... --protocol per-target --models resnet20 --methods synflow,connect --levels 4.5,4.75,5 --seeds 1

Runtime (2 shared CPU cores, 1 torch thread; measured)
    full (nested, 100 rounds, step 0.25, 3 seeds): 17 min wall under load, i.e. 3.5-7 min
    per seed; VGG-16 SynFlow / CoNNect dominate (100-200 s per run, ~1 s per round), every
    ResNet-20 run takes seconds. ``--quick`` (1 seed, 10 rounds, step 0.5): 1-2.5 min.
    ``--protocol per-target`` on ResNet-20, 2 methods x 7 levels x 2 seeds: 2 min.

Outputs (``--out``, default ``results/critical_compression_init/``)
    runs/*.json           one atomic JSON per unit (re-running skips finished units)
    levels.csv / .md      one row per model x method x seed x level (raw) / aggregated over seeds
    critical.csv / .md    critical compression exponent per model x method; for iterated
                          methods also what the failing round removed (the layers it
                          emptied, their scores against the lowest kept; JSON ``failing_step``)
    anchors.csv / .md     models with published values: ours against SynFlow's
    critical_compression_init.png, also copied to figures/ by a full (non --quick) run
    A run of ``--models vgg16_bn_synflow`` alone writes to
    ``results/critical_compression_vgg_synflow/`` and the figures
    ``critical_compression_vgg_synflow{,_anchors}.png``.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from _common import Timer, limit_threads, save_figure, style  # noqa: E402

from netgraph.connectivity.report import analyze  # noqa: E402
from netgraph.experiments.store import run_unit  # noqa: E402
from netgraph.experiments.tables import fmt, mean_std, write_table  # noqa: E402
from netgraph.graph.tracer import trace  # noqa: E402
from netgraph.plots.style import mpl_style as style_context  # noqa: E402
from netgraph.plots.style import new_figure  # noqa: E402
from netgraph.pruning import METHODS, prunable_parameters, select_mask, total_weights  # noqa: E402
from netgraph.pruning.schedule import keep_schedule, target_keep  # noqa: E402
from netgraph.pruning.scores import ScoreContext  # noqa: E402
from netgraph.training.engine import seed_everything  # noqa: E402
from netgraph.training.models import build_model, default_input_shape  # noqa: E402

NAME = "critical_compression_init"
DEFAULT_MODELS = ["vgg16_bn_cifar", "resnet20"]
DEFAULT_METHODS = ["random", "magnitude", "synflow", "connect"]
ITERATIVE = {"synflow", "connect"}
# Per-model protocol where it is not the default (10 classes, grid from 10^0.5):
# SynFlow's VGG-16-BN is pruned for CIFAR-100 on the grid 10^0, 10^0.25, ..., 10^6.
# A run of that model alone writes its own outputs and figures (SYNFLOW_NAME).
SYNFLOW_MODEL = "vgg16_bn_synflow"
SYNFLOW_NAME = "critical_compression_vgg_synflow"
CLASSES = {SYNFLOW_MODEL: 100}
X_MIN = {SYNFLOW_MODEL: 0.0}
# SynFlow's published critical exponents (Tanaka et al. 2020, Fig. 1; VGG-16-BN,
# CIFAR-100): per run, the largest grid level at which all 14 weight layers keep a
# weight, read from the per-layer tables in their repository
# (Results/data/0520_2020_cifar100_lottery_vgg16_bn{,_run2,_run3}/compression-*.pkl),
# and the mean of the 3 runs (the anchors quoted for the paper).
ANCHORS = {
    SYNFLOW_MODEL: {
        "random": (2.75, 3.75, 3.5),
        "magnitude": (2.75, 2.75, 2.75),
        "synflow": (6.0, 6.0, 5.75),
    }
}


# --- one pruned state ----------------------------------------------------------------


class Pruner:
    """A model at initialisation, its prunable weights as one flat vector, and
    the state of a nested pruning run (which weights are alive)."""

    def __init__(self, model_name: str, method: str, seed: int, num_classes: int) -> None:
        seed_everything(seed)
        self.input_shape = default_input_shape(model_name)
        self.model = build_model(model_name, num_classes, self.input_shape).eval()
        self.params = prunable_parameters(self.model)
        self.weights = [getattr(m, n) for m, n in self.params]
        self.sizes = [w.numel() for w in self.weights]
        modules = {module: name for name, module in self.model.named_modules()}
        self.layer_names = [f"{modules[m]}.{n}" for m, n in self.params]
        self.total = total_weights(self.params)
        self.init = torch.cat([w.detach().flatten() for w in self.weights]).clone()
        self.alive = torch.ones(self.total, dtype=torch.bool)
        self.graph = trace(self.model, input_shape=self.input_shape)
        self.method = METHODS[method]
        self.ctx = ScoreContext(device=torch.device("cpu"), input_shape=self.input_shape, seed=seed)

    def scores(self) -> torch.Tensor:
        """The method's score of every prunable weight (library score function), flat."""
        with torch.no_grad():
            parts = self.method.score(self.model, self.params, self.ctx)
        return torch.cat([p.detach().flatten().to(torch.float64) for p in parts])

    def set_alive(self, alive: torch.Tensor) -> None:
        """Weights = init where alive, else 0 (in place)."""
        self.alive = alive
        values = (self.init * alive).split(self.sizes)
        with torch.no_grad():
            for w, v in zip(self.weights, values):
                w.copy_(v.view_as(w))

    def layer_of(self, flat: int) -> str:
        """The layer (``module.weight``) holding entry ``flat`` of the flat weight vector."""
        return self.layer_names[bisect.bisect_right(list(itertools.accumulate(self.sizes)), flat)]

    def report(self) -> dict:
        rep = analyze(self.graph)
        layers = {layer.name: [layer.nonzero, layer.alive] for layer in rep.layers}
        return {
            "nonzero": rep.nonzero,
            "alive": rep.alive,
            "dead": rep.dead,
            "nominal_compression": rep.nominal_compression,
            "effective_compression": rep.effective_compression,
            "log_phi": rep.log_phi,
            "disconnected": rep.disconnected,
            "collapsed_layers": rep.collapsed_layers,
            "cut_layers": rep.cut_layers,
            "n_collapsed": len(rep.collapsed_layers),
            "n_cut": len(rep.cut_layers),
            "ok": (not rep.disconnected) and not rep.collapsed_layers,
            "bottleneck": rep.bottleneck,
            "layers": layers,
        }


def prefix(order: torch.Tensor, keep: int) -> torch.Tensor:
    """Boolean mask of the first ``keep`` entries of ``order``."""
    mask = torch.zeros(order.numel(), dtype=torch.bool)
    mask[order[:keep]] = True
    return mask


def top_k(scores: torch.Tensor, alive: torch.Tensor, keep: int) -> torch.Tensor:
    """Boolean mask of the ``keep`` best alive scores: ``select_mask``'s global rule."""
    return select_mask([scores], keep, "global", [alive])[0]


# --- levels --------------------------------------------------------------------------


def grid(x_min: float, x_max: float, step: float, total: int) -> list[float]:
    """x_min, x_min + step, ... up to x_max, dropping levels that would keep no weight."""
    xs, k = [], 0
    while True:
        x = round(x_min + k * step, 6)
        if x > x_max + 1e-9:
            break
        if round(total / 10**x) >= 1:
            xs.append(x)
        k += 1
    return xs


def exponent(total: int, keep: int) -> float:
    return math.log10(total / keep)


def classes(model: str, args: argparse.Namespace) -> int:
    """Output classes of ``model``: ``--num-classes``, else its protocol's (10 by default)."""
    return args.num_classes or CLASSES.get(model, 10)


def grid_start(model: str, args: argparse.Namespace) -> float:
    """First grid exponent of ``model``: ``--x-min``, else its protocol's (0.5 by default)."""
    return args.x_min if args.x_min is not None else X_MIN.get(model, 0.5)


# --- one unit: a nested trajectory ---------------------------------------------------


def nested_run(model_name: str, method: str, seed: int, args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    p = Pruner(model_name, method, seed, classes(model_name, args))
    xs = args.levels or grid(grid_start(model_name, args), args.x_max, args.step, p.total)
    level_keep = {x: target_keep(p.total, compression=10**x) for x in xs}
    iterative = method in ITERATIVE
    rounds = args.rounds if iterative else 1
    keeps = sorted(set(level_keep.values()) | (set(keep_schedule(p.total, min(level_keep.values()), rounds)) if iterative else set()),
                   reverse=True)
    at_keep = {k: x for x, k in level_keep.items()}
    never = len(keeps) + 1
    pruned_at = torch.full((p.total,), never, dtype=torch.int32)  # round that removed each weight
    # One-shot: score once at init; the kept set at every level is a prefix of one
    # stable descending order (= select_mask's tie rule), so sort once.
    order = None if iterative else torch.sort(p.scores(), descending=True, stable=True).indices
    levels = []
    for r, keep in enumerate(keeps):
        alive = top_k(p.scores(), p.alive, keep) if iterative else prefix(order, keep)
        pruned_at[p.alive & ~alive] = r
        p.set_alive(alive)
        if keep in at_keep:
            x = at_keep[keep]
            levels.append({"x": x, "target_compression": 10**x, "keep": keep, "round": r + 1, **p.report()})
    critical = refine(p, levels, keeps, pruned_at, order, args.refine_steps)
    return {"model": model_name, "method": method, "seed": seed, "protocol": "nested",
            "rounds": rounds, "schedule_rounds": len(keeps), "total": p.total,
            "num_classes": classes(model_name, args), "levels": levels,
            "critical": critical, "seconds": time.perf_counter() - started}


CRITERIA = {
    # the brief's definition: every layer keeps a weight and some input reaches an output
    "strict": lambda state: state["ok"],
    # connectivity alone: in a ResNet a projection shortcut (or a block's conv) may
    # collapse while the other branch keeps the input->output paths
    "connected": lambda state: not state["disconnected"],
    # SynFlow's definition (their figures notebook): every weight layer keeps a weight,
    # connected or not. In a plain chain (VGG) a collapse disconnects, so this level is
    # at or above the other two
    "no_collapse": lambda state: not state["n_collapsed"],
}


def refine(p: Pruner, levels: list[dict], keeps: list[int], pruned_at: torch.Tensor,
           order: torch.Tensor | None, steps: int) -> dict:
    """Critical exponent under each criterion: last good grid level, then bisection
    between it and the first bad one (trajectory rounds for iterated methods, keep
    counts for one-shot ones). Every criterion is monotone: masks only shrink."""
    return {name: _refine(p, levels, keeps, pruned_at, order, steps, good) for name, good in CRITERIA.items()}


def _refine(p: Pruner, levels: list[dict], keeps: list[int], pruned_at: torch.Tensor,
            order: torch.Tensor | None, steps: int, good) -> dict:
    bad = [i for i, level in enumerate(levels) if not good(level)]
    if not bad:
        return {"grid_x": levels[-1]["x"], "refined_x": exponent(p.total, levels[-1]["keep"]),
                "bracket": [levels[-1]["x"], None], "censored": "above", "failure": None, "first_collapsed": []}
    j = bad[0]
    if j == 0:
        return {"grid_x": None, "refined_x": None, "bracket": [None, levels[0]["x"]], "censored": "below",
                "failure": _failure(levels[0]), "first_collapsed": levels[0]["collapsed_layers"]}
    lo_keep, hi_keep = levels[j - 1]["keep"], levels[j]["keep"]  # lo: good (more weights), hi: bad
    good_keep, bad_state = lo_keep, levels[j]

    def check(alive: torch.Tensor) -> dict:
        p.set_alive(alive)
        return p.report()

    if order is None:  # iterated: states are the trajectory rounds between the two levels
        lo, hi = levels[j - 1]["round"] - 1, levels[j]["round"] - 1  # 0-based rounds
        while hi - lo > 1:
            mid = (lo + hi) // 2
            rep = check(pruned_at > mid)
            if good(rep):
                lo, good_keep = mid, keeps[mid]
            else:
                hi, bad_state = mid, rep
        bad_keep = keeps[hi]
        step = failing_step(p, pruned_at, lo, hi, keeps)
    else:  # one-shot: any keep count, bisected on a log scale
        lo_k, hi_k = lo_keep, hi_keep
        for _ in range(steps):
            mid = round(math.sqrt(lo_k * hi_k))
            if mid in (lo_k, hi_k):
                break
            rep = check(prefix(order, mid))
            if good(rep):
                lo_k = good_keep = mid
            else:
                hi_k, bad_state = mid, rep
        bad_keep, step = hi_k, None
    return {"grid_x": levels[j - 1]["x"], "refined_x": exponent(p.total, good_keep),
            "refined_keep": good_keep, "bracket": [exponent(p.total, good_keep), exponent(p.total, bad_keep)],
            "censored": None, "failure": _failure(bad_state), "first_collapsed": bad_state["collapsed_layers"],
            "failing_step": step}


def failing_step(p: Pruner, pruned_at: torch.Tensor, lo: int, hi: int, keeps: list[int]) -> dict:
    """What the round that failed removed (an iterated run's last good round ``lo``, its
    next ``hi``): the removed weights' layers and scores, as scored in state ``lo``, and
    the lowest score that survived. Says *why* a layer went: e.g. its last weights all
    scored below every weight of the other layers."""
    p.set_alive(pruned_at > lo)
    scores = p.scores()
    removed: dict[str, list] = {}  # layer -> [count, lowest score, highest score]
    for i in (pruned_at == hi).nonzero().squeeze(1).tolist():
        entry = removed.setdefault(p.layer_of(i), [0, math.inf, -math.inf])
        entry[0] += 1
        entry[1], entry[2] = min(entry[1], float(scores[i])), max(entry[2], float(scores[i]))
    kept = pruned_at > hi
    lowest = int(torch.where(kept, scores, torch.inf).argmin()) if kept.any() else None
    return {"keep_before": keeps[lo], "keep_after": keeps[hi], "removed": removed,
            "lowest_kept": [p.layer_of(lowest), float(scores[lowest])] if lowest is not None else None}


def _failure(state: dict) -> str:
    """What went wrong first: 'collapse', 'disconnect' or 'collapse+disconnect'."""
    parts = (["collapse"] if state["n_collapsed"] else []) + (["disconnect"] if state["disconnected"] else [])
    return "+".join(parts)


# --- per-target protocol -----------------------------------------------------------------


def per_target_run(model_name: str, method: str, seed: int, x: float, args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    p = Pruner(model_name, method, seed, classes(model_name, args))
    keep = target_keep(p.total, compression=10**x)
    iterative = method in ITERATIVE
    rounds = args.rounds if iterative else 1
    for k in keep_schedule(p.total, keep, rounds):
        p.set_alive(top_k(p.scores(), p.alive, k))
    level = {"x": x, "target_compression": 10**x, "keep": keep, "round": rounds, **p.report()}
    return {"model": model_name, "method": method, "seed": seed, "protocol": "per-target", "rounds": rounds,
            "total": p.total, "levels": [level], "seconds": time.perf_counter() - started}


def merge_per_target(units: list[dict]) -> dict:
    """Per-target levels of one (model, method, seed) as one run with a grid-only critical x."""
    levels = sorted((u["levels"][0] for u in units), key=lambda level: level["x"])
    critical = {}
    for name, good in CRITERIA.items():
        # per-target masks need not be nested: the last good level below the first bad one
        bad = [i for i, level in enumerate(levels) if not good(level)]
        if not bad:
            critical[name] = {"grid_x": levels[-1]["x"], "refined_x": None, "censored": "above", "failure": None,
                              "first_collapsed": []}
        else:
            critical[name] = {"grid_x": levels[bad[0] - 1]["x"] if bad[0] else None, "refined_x": None,
                              "censored": None if bad[0] else "below", "failure": _failure(levels[bad[0]]),
                              "first_collapsed": levels[bad[0]]["collapsed_layers"]}
    first = units[0]
    return {**{k: first[k] for k in ("model", "method", "seed", "protocol", "rounds", "total")},
            "levels": levels, "critical": critical, "seconds": sum(u["seconds"] for u in units)}


# --- tables and figure -------------------------------------------------------------------


def tables(runs: list[dict], out: Path, args: argparse.Namespace) -> tuple[str, str]:
    long_rows = []
    for run in runs:
        for level in run["levels"]:
            long_rows.append({k: run[k] for k in ("model", "method", "seed", "protocol", "rounds", "total")}
                             | {k: v for k, v in level.items() if k != "layers"})
    level_cols = ["model", "method", "seed", "protocol", "rounds", "total", "x", "target_compression", "keep",
                  "round", "nonzero", "alive", "dead", "nominal_compression", "effective_compression", "log_phi",
                  "disconnected", "n_collapsed", "n_cut", "ok", "collapsed_layers", "cut_layers", "bottleneck"]
    # aggregated levels (markdown): one row per model x method x level
    agg = []
    keys = sorted({(r["model"], r["method"], r["x"]) for r in long_rows},
                  key=lambda k: (k[0], _method_order(k[1]), k[2]))
    for model, method, x in keys:
        rows = [r for r in long_rows if (r["model"], r["method"], r["x"]) == (model, method, x)]
        n = len(rows)
        log_phi = mean_std(r["log_phi"] for r in rows)
        eff = mean_std(math.log10(r["effective_compression"]) if r["effective_compression"] else None for r in rows)
        agg.append({
            "model": model, "method": method, "x": f"{x:g}",
            "ok (no collapse, connected)": f"{sum(r['ok'] for r in rows)}/{n}",
            "connected": f"{sum(not r['disconnected'] for r in rows)}/{n}",
            "collapsed layers": fmt(mean_std(r["n_collapsed"] for r in rows)[0], 2),
            "cut layers": fmt(mean_std(r["n_cut"] for r in rows)[0], 2),
            "log10 eff. compr.": fmt(eff[0], 3) if eff[2] else "inf (nothing alive)",
            "log phi": fmt(log_phi[0], 4) if log_phi[2] == n else (fmt(log_phi[0], 4) + f" ({log_phi[2]}/{n} conn.)" if log_phi[2] else "-inf"),
        })
    levels_md = write_table(out, "levels", long_rows, level_cols, md_rows=agg, md_columns=list(agg[0]) if agg else None)
    # compact pivot per model: x down, methods across; "runs OK / runs (connected), mean log phi of connected runs"
    pivot = []
    for model in sorted({r["model"] for r in long_rows}):
        methods = sorted({r["method"] for r in long_rows if r["model"] == model}, key=_method_order)
        for x in sorted({r["x"] for r in long_rows if r["model"] == model}):
            row = {"model": model, "x": f"{x:g}"}
            for method in methods:
                at = [r for r in long_rows if (r["model"], r["method"], r["x"]) == (model, method, x)]
                if not at:
                    row[method] = ""
                    continue
                ok = sum(r["ok"] for r in at)
                conn = sum(not r["disconnected"] for r in at)
                phi = mean_std(r["log_phi"] for r in at)
                row[method] = f"{ok}/{len(at)}" + (f" ({conn} conn.)" if conn != ok else "") + (f", {phi[0]:.1f}" if phi[2] else ", –")
            pivot.append(row)
    write_table(out, "levels_pivot", pivot, md_rows=pivot)
    # critical exponents
    crit_rows, crit_md = [], []
    for model, method in sorted({(r["model"], r["method"]) for r in runs}, key=lambda k: (k[0], _method_order(k[1]))):
        group = [r for r in runs if (r["model"], r["method"]) == (model, method)]
        row = {"model": model, "method": method, "seeds": len(group), "protocol": group[0]["protocol"],
               "rounds": group[0]["rounds"], "seconds_per_run": mean_std(r["seconds"] for r in group)[0]}
        md = {"model": model, "method": method, "seeds": len(group)}
        for name in CRITERIA:
            crit = [r["critical"][name] for r in group]
            grid_x = [c["grid_x"] for c in crit]
            refined = mean_std(c["refined_x"] for c in crit)
            censored = sorted({c["censored"] for c in crit if c["censored"]})
            failures = sorted({c["failure"] for c in crit if c["failure"]})
            first = sorted({layer for c in crit for layer in c["first_collapsed"]})
            eff_at = []
            for r, c in zip(group, crit):
                if c["grid_x"] is not None:
                    at = next(lv for lv in r["levels"] if lv["x"] == c["grid_x"])
                    eff = at["effective_compression"]  # None when nothing is alive (disconnected)
                    eff_at.append(math.log10(eff) if eff else None)
            row |= {f"{name}_x_grid_mean": mean_std(grid_x)[0], f"{name}_x_grid_min": _min(grid_x),
                    f"{name}_x_grid_max": _max(grid_x), f"{name}_x_refined_mean": refined[0],
                    f"{name}_x_refined_std": refined[1], f"{name}_censored": ";".join(censored),
                    f"{name}_first_failure": ";".join(failures), f"{name}_first_collapsed": ";".join(first),
                    f"{name}_log10_effective_compression_at_grid_x": mean_std(eff_at)[0]}
            md[f"{name}: critical x per seed"] = ", ".join(_seed_value(c, r) for c, r in
                                                            sorted(zip(crit, group), key=lambda cr: cr[1]["seed"]))
            if name == "strict":
                md["strict: first failure"] = (", ".join(failures) or "none") + (f" ({', '.join(_short(first))})" if first else "")
                md["strict: the failing round (iterated)"] = "; ".join(
                    _step_text(c, r) for c, r in sorted(zip(crit, group), key=lambda cr: cr[1]["seed"])
                    if c.get("failing_step")) or "–"
        md["s/run"] = f"{row['seconds_per_run']:.0f}"
        crit_rows.append(row)
        crit_md.append(md)
    crit_md_text = write_table(out, "critical", crit_rows, md_rows=crit_md, md_columns=list(crit_md[0]) if crit_md else None)
    return levels_md, crit_md_text


def anchor_table(runs: list[dict], out: Path) -> str:
    """Critical exponents of the models in :data:`ANCHORS` next to SynFlow's: their
    definition (no collapse, grid level) first, then ours refined and connected.
    Writes ``anchors.csv`` / ``.md``; returns the markdown ('' if no such model)."""
    rows, md_rows = [], []
    for model in sorted({r["model"] for r in runs} & set(ANCHORS)):
        for method in sorted({r["method"] for r in runs if r["model"] == model}, key=_method_order):
            group = _group(runs, model, method)
            paper = ANCHORS[model].get(method)
            whole = [r["critical"]["no_collapse"] for r in group]
            conn = [r["critical"]["connected"] for r in group]
            grid_x = [c["grid_x"] for c in whole]
            ours = mean_std(grid_x)
            refined, connected = mean_std(c["refined_x"] for c in whole), mean_std(c["refined_x"] for c in conn)
            anchor = sum(paper) / len(paper) if paper else None
            first = sorted({layer for c in whole for layer in c["first_collapsed"]})
            rows.append({"model": model, "method": method, "seeds": len(group),
                         "synflow_runs": list(paper) if paper else None, "synflow_mean": anchor,
                         "grid_x": grid_x, "grid_x_mean": ours[0], "grid_minus_synflow":
                         ours[0] - anchor if anchor is not None and ours[2] == len(group) else None,
                         "refined_x": [c["refined_x"] for c in whole], "refined_x_mean": refined[0],
                         "refined_x_std": refined[1], "connected_refined_x": [c["refined_x"] for c in conn],
                         "connected_refined_x_mean": connected[0], "connected_refined_x_std": connected[1],
                         "censored": ";".join(sorted({c["censored"] for c in whole if c["censored"]})),
                         "first_collapsed": ";".join(first)})
            row = rows[-1]
            md_rows.append({
                "method": method,
                "SynFlow paper: per run → mean":
                    (", ".join(f"{x:g}" for x in paper) + f" → **{anchor:.2f}**") if paper else "–",
                "ours, grid (their definition): per seed → mean":
                    ", ".join(_seed_value(c, r, refined=False) for c, r in zip(whole, group))
                    + (f" → **{ours[0]:.2f}**" if ours[2] == len(group) else ""),
                "ours − paper":
                    f"{row['grid_minus_synflow']:+.2f}" if row["grid_minus_synflow"] is not None else "–",
                "no collapse, refined: per seed (mean ± std)":
                    ", ".join(_seed_value(c, r) for c, r in zip(whole, group)) + _pm(refined),
                "connected, refined: per seed (mean ± std)":
                    ", ".join(_seed_value(c, r) for c, r in zip(conn, group)) + _pm(connected),
                "first collapsed": ", ".join(_short(first)) or "none",
            })
    if not rows:
        return ""
    return write_table(out, "anchors", rows, md_rows=md_rows, md_columns=list(md_rows[0]))


def _pm(stats: tuple) -> str:
    """' (m ± s)' of a mean_std triple, '' when no value was finite."""
    mean, std, n = stats
    return f" ({mean:.2f} ± {std:.2f})" if n > 1 else (f" ({mean:.2f})" if n else "")


def _step_text(crit: dict, run: dict) -> str:
    """A failing round in words: how many weights each emptied layer lost, at what
    scores, against the lowest score that survived."""
    step = crit["failing_step"]
    lost = [f"{layer.removesuffix('.weight')} lost its last {n} ({lo:.3g}–{hi:.3g})"
            for layer, (n, lo, hi) in step["removed"].items() if layer in crit["first_collapsed"]]
    lowest = step["lowest_kept"]
    return (f"seed {run['seed']}, {step['keep_before']}→{step['keep_after']} weights: "
            + (", ".join(lost) or f"{sum(n for n, _, _ in step['removed'].values())} removed, none emptied a layer")
            + (f"; lowest kept {lowest[1]:.3g} ({lowest[0].removesuffix('.weight')})" if lowest else ""))


def _seed_value(crit: dict, run: dict, refined: bool = True) -> str:
    """One seed's refined (else grid) critical exponent: '<x0' if the first level
    already fails, '≥x' if no level failed, else the value (grid value if not refined)."""
    if crit["censored"] == "below":
        return f"<{run['levels'][0]['x']:g}"
    value = crit["refined_x"] if refined and crit["refined_x"] is not None else crit["grid_x"]
    return ("≥" if crit["censored"] == "above" else "") + f"{value:.2f}"


def _short(layers: list[str], limit: int = 3) -> list[str]:
    names = [layer.removesuffix(".weight") for layer in layers]
    return names[:limit] + ([f"+{len(names) - limit}"] if len(names) > limit else [])


def _min(values):
    finite = [v for v in values if v is not None]
    return min(finite) if finite else None


def _max(values):
    finite = [v for v in values if v is not None]
    return max(finite) if finite else None


def _range(values) -> str:
    finite = [v for v in values if v is not None]
    if not finite:
        return "< first level"
    lo, hi = min(finite), max(finite)
    return f"{lo:g}" if lo == hi else f"{lo:g}–{hi:g}"


def _method_order(method: str) -> int:
    return DEFAULT_METHODS.index(method) if method in DEFAULT_METHODS else len(DEFAULT_METHODS)


def figure(runs: list[dict], out: Path, name: str, copy: bool) -> list[Path]:
    models = [m for m in DEFAULT_MODELS if any(r["model"] == m for r in runs)]
    models += sorted({r["model"] for r in runs} - set(models))
    with style_context():
        fig = new_figure(max(4.6 * len(models), 6.4), 6.4)
        axes = fig.subplots(2, len(models), squeeze=False, sharex="col")
        for col, model in enumerate(models):
            methods = sorted({r["method"] for r in runs if r["model"] == model}, key=_method_order)
            ax_ok, ax_phi = axes[0][col], axes[1][col]
            for method in methods:
                group = [r for r in runs if (r["model"], r["method"]) == (model, method)]
                color, marker = style(method)
                xs = sorted({lv["x"] for r in group for lv in r["levels"]})
                ok, conn, whole, phi = [], [], [], []
                for x in xs:
                    at = [lv for r in group for lv in r["levels"] if lv["x"] == x]
                    ok.append(sum(lv["ok"] for lv in at) / len(at))
                    conn.append(sum(not lv["disconnected"] for lv in at) / len(at))
                    whole.append(sum(not lv["n_collapsed"] for lv in at) / len(at))
                    vals = [lv["log_phi"] for lv in at if lv["log_phi"] is not None]
                    phi.append(sum(vals) / len(vals) if len(vals) == len(at) else math.nan)
                ax_ok.plot(xs, ok, color=color, marker=marker, ms=4, label=method)
                ax_ok.plot(xs, conn, color=color, ls=":", lw=1)
                if whole != ok:  # no collapse but disconnected somewhere: show it
                    ax_ok.plot(xs, whole, color=color, ls="-.", lw=1)
                ax_phi.plot(xs, phi, color=color, marker=marker, ms=4, label=method)
                for criterion, ls in (("strict", "--"), ("connected", ":"), ("no_collapse", "-.")):
                    refined = [r["critical"][criterion]["refined_x"] for r in group
                               if r["critical"][criterion]["refined_x"] is not None]
                    if refined:
                        ax_ok.axvline(sum(refined) / len(refined), color=color, lw=0.8, ls=ls, alpha=0.7)
            n_seeds = len({r["seed"] for r in runs if r["model"] == model})
            ax_ok.set_title(f"{model} (init, {n_seeds} seed{'s' if n_seeds > 1 else ''})")
            ax_ok.set_ylabel("fraction of seeds OK")
            ax_ok.set_ylim(-0.05, 1.05)
            ax_phi.set_ylabel("log phi (mean; gap = disconnected)")
            ax_phi.set_xlabel("x   (compression 10^x)")
            ax_ok.legend(loc="lower left", fontsize=8)
            for ax in (ax_ok, ax_phi):
                ax.grid(True, alpha=0.4)
        fig.suptitle("Pruning at initialisation, data-free: layer collapse and disconnection vs compression\n"
                     "curves: solid = no collapse & connected, dotted = connected, dash-dot = no collapse (where it differs)\n"
                     "vertical lines: refined critical exponents (dashed = no collapse & connected, dotted, dash-dot as above)",
                     fontsize=8)
        return save_figure(fig, out, name, copy)


def anchor_figure(runs: list[dict], args: argparse.Namespace) -> list[Path]:
    """Critical exponent per method for the models in :data:`ANCHORS`: ours per seed
    (refined, no collapse and connected; bar = mean grid level) against SynFlow's runs."""
    models = sorted({r["model"] for r in runs} & set(ANCHORS))
    gray = "0.35"
    legend = [
        Line2D([], [], marker="o", color=gray, ls="none", label="ours: no layer collapsed (per seed, refined)"),
        Line2D([], [], marker="o", mfc="none", color=gray, ls="none", label="ours: connected (per seed, refined)"),
        Line2D([], [], color=gray, lw=2.5, label="ours: mean grid level (SynFlow's definition)"),
        Line2D([], [], marker="*", color=PAPER_COLOR, mec="k", ms=12, ls="none", label="SynFlow paper: mean of 3 runs"),
        Line2D([], [], marker="_", color="k", mew=1.5, ms=10, ls="none", label="SynFlow paper: one run"),
    ]
    with style_context():
        fig = new_figure(6.4 * len(models), 4.6)
        for ax, model in zip(fig.subplots(1, len(models), squeeze=False)[0], models):
            methods = sorted({r["method"] for r in runs if r["model"] == model}, key=_method_order)
            for i, method in enumerate(methods):
                group = _group(runs, model, method)
                color, marker = style(method)
                for j, r in enumerate(group):
                    dx = 0.08 * (j - (len(group) - 1) / 2)
                    for criterion, side, fill in (("no_collapse", -0.12, color), ("connected", 0.12, "none")):
                        x = r["critical"][criterion]["refined_x"]
                        if x is not None:
                            ax.plot(i + side + dx, x, marker=marker, mfc=fill, color=color, ms=7, ls="none")
                grid_mean = mean_std(r["critical"]["no_collapse"]["grid_x"] for r in group)
                if grid_mean[2]:
                    ax.hlines(grid_mean[0], i - 0.3, i + 0.3, color=color, lw=2.5)
                paper = ANCHORS[model].get(method)
                if paper:
                    ax.plot([i + 0.36] * len(paper), paper, marker="_", color="k", mew=1.5, ms=10, ls="none")
                    ax.plot(i + 0.36, sum(paper) / len(paper), marker="*", color=PAPER_COLOR, mec="k", ms=14, ls="none")
            first = group[0]
            top = math.log10(first["total"] / len(first["levels"][0]["layers"]))
            ax.axhline(top, color="k", ls="--", lw=1)
            ax.text(-0.55, top + 0.03, f"one weight per layer: 10^{top:.2f}", ha="left", va="bottom", fontsize=7)
            ax.set_ylim(top=top + 0.3)
            ax.set_xticks(range(len(methods)), methods)
            ax.set_xlim(-0.6, len(methods) - 0.4)
            ax.set_ylabel("critical compression exponent x  (10^x)")
            seeds = len({r["seed"] for r in runs if r["model"] == model})
            ax.set_title(f"{model}, {classes(model, args)} classes, at init, {seeds} seed{'s' * (seeds > 1)}", fontsize=9)
            ax.grid(True, axis="y", alpha=0.4)
            ax.legend(handles=legend, loc="center right", fontsize=7, framealpha=0.9)
        fig.suptitle("Pruning at init, data-free: critical compression (last level before a layer collapses)\n"
                     "against SynFlow's published values (Tanaka et al. 2020, Fig. 1: VGG-16-BN, CIFAR-100)", fontsize=9)
        return save_figure(fig, args.out, args.name + "_anchors", not args.quick)


def _group(runs: list[dict], model: str, method: str) -> list[dict]:
    """The runs of one model and method, by seed."""
    return sorted((r for r in runs if (r["model"], r["method"]) == (model, method)), key=lambda r: r["seed"])


PAPER_COLOR = "#F0E442"  # Okabe-Ito yellow: no method uses it


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 10 rounds, step 0.5")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output directory (default results/{NAME}/; "
                             f"results/{SYNFLOW_NAME}/ for --models {SYNFLOW_MODEL})")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3; --quick 1)")
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=None, help="rounds of the iterated methods (default 100; --quick 10)")
    parser.add_argument("--protocol", choices=["nested", "per-target"], default="nested")
    parser.add_argument("--x-min", type=float, default=None,
                        help=f"first grid exponent (default 0.5; 0 for {SYNFLOW_MODEL}, as SynFlow's grid)")
    parser.add_argument("--num-classes", type=int, default=None,
                        help=f"classifier outputs (default 10; 100 for {SYNFLOW_MODEL}, SynFlow's CIFAR-100)")
    parser.add_argument("--x-max", type=float, default=6.0)
    parser.add_argument("--step", type=float, default=None, help="grid step in x (default 0.25; --quick 0.5)")
    parser.add_argument("--levels", type=lambda s: [float(v) for v in s.split(",")], default=None,
                        help="explicit comma-separated x levels instead of the grid")
    parser.add_argument("--refine-steps", type=int, default=8, help="bisection steps of one-shot methods")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-figure", action="store_true")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or (1 if args.quick else 3)
    args.rounds = args.rounds or (10 if args.quick else 100)
    args.step = args.step or (0.5 if args.quick else 0.25)
    args.models = args.models.split(",")
    args.name = SYNFLOW_NAME if args.models == [SYNFLOW_MODEL] else NAME
    args.out = args.out or Path("results") / (args.name + ("_quick" if args.quick else ""))
    if args.num_classes is not None and args.num_classes < 1:
        parser.error(f"--num-classes must be >= 1, got {args.num_classes}")
    args.methods = args.methods.split(",")
    for method in args.methods:
        METHODS[method]  # unknown names fail here, listing the valid ones
        if not METHODS[method].data_free:
            parser.error(f"{method} needs data; this experiment is data-free")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_threads(args.threads)
    timer = Timer()
    runs = []
    tag = (f"r{args.rounds}_s{args.step:g}" + (f"_L{'-'.join(f'{x:g}' for x in args.levels)}" if args.levels else "")
           + (f"_x{args.x_min:g}" if args.x_min is not None else "") + (f"_c{args.num_classes}" if args.num_classes else ""))
    for seed in range(args.seed_offset, args.seed_offset + args.seeds):
        for model in args.models:
            for method in args.methods:
                if args.protocol == "nested":
                    runs.append(run_unit(args.out, ("nested", model, method, f"seed{seed}", tag),
                                         lambda: nested_run(model, method, seed, args)))
                else:
                    total = total_weights(prunable_parameters(build_model(model, classes(model, args))))
                    xs = args.levels or grid(grid_start(model, args), args.x_max, args.step, total)
                    units = [run_unit(args.out, ("per-target", model, method, f"seed{seed}", f"r{args.rounds}", f"x{x:g}"),
                                      lambda x=x: per_target_run(model, method, seed, x, args)) for x in xs]
                    runs.append(merge_per_target(units))
    levels_md, critical_md = tables(runs, args.out, args)
    anchors_md = anchor_table(runs, args.out)
    if not args.no_figure:
        paths = figure(runs, args.out, args.name, copy=not args.quick)
        if anchors_md:
            paths += anchor_figure(runs, args)
        for path in paths:
            print(f"figure: {path}")
    print("\n## Per level (aggregated over seeds)\n")
    print(levels_md)
    print("## Critical compression exponent\n")
    print(critical_md)
    if anchors_md:
        print("## Against SynFlow's published critical compression\n")
        print(anchors_md)
    print(f"outputs in {args.out}/ ; total wall time {timer}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
