"""``netgraph compare``: a resumable sweep of pruning methods x compression levels x seeds.

    from netgraph.experiments.comparison import SweepConfig, compare
    result = compare(SweepConfig(model="lenet300", dataset="mnist5k"), "results")
    result.rows          # one dict per run, keys netgraph.experiments.sweep.RESULT_KEYS
    result.critical      # per protocol and method: largest intact level, first disconnected

Layout of ``OUT`` (ShrinkBench-style, every file written atomically):

    sweep.json                       what the sweep is (model, data, grid, budget, ...)
    runs/<protocol>-<method>-c<level>-s<seed>/
        params.json, log.txt, metrics.json (written last: a run with it is finished)
        model.pt                     pruned state dict (runs the figures draw, or all)
    dense/<plain|connect|l1>-s<seed>/  the cached dense trainings
    results.csv, results.json        the tidy table (``layers`` in the JSON only)
    critical.json, summary.md        critical compressions; a short markdown report
    figures/                         PNG + interactive HTML

Running again with the same ``OUT`` resumes: finished runs are read back, not
recomputed. A different sweep in ``OUT`` is refused (``force=True`` clears it);
both through :mod:`netgraph.experiments.store`, the tables through
:mod:`netgraph.experiments.tables`.
A run that fails is reported at the end (its ``error.txt`` says why) after the
others finished; re-running retries it. See :mod:`netgraph.experiments.sweep` for the protocols.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from netgraph.atomic import atomic_write_json, atomic_write_text
from netgraph.device import pick_device
from netgraph.errors import NetgraphError
from netgraph.experiments.store import claim_out, finished
from netgraph.experiments.sweep import (
    DEFAULT_EXPONENTS,
    DENSE_VARIANTS,
    METRICS,
    MODEL,
    PROTOCOLS,
    RESULT_KEYS,
    RunSpec,
    SweepConfig,
    SweepContext,
    all_methods,
    exponent_of,
    level_label,
    parse_levels,
    plan,
    run_one,
)
from netgraph.experiments.tables import csv_text, markdown_table, mean_std, pm
from netgraph.text import error_line

logger = logging.getLogger(__name__)

__all__ = [
    "CompareResult",
    "DEFAULT_EXPONENTS",
    "RESULT_KEYS",
    "SAVE_MODELS",
    "SweepConfig",
    "SweepInterrupted",
    "compare",
    "critical_compressions",
    "default_jobs",
    "load_rows",
    "parse_levels",
    "path_runs",
]

SWEEP_FILE = "sweep.json"
SWEEP_FORMAT = 1
SAVE_MODELS = ("paths", "all", "none")
#: What ``force`` deletes from OUT: only what a sweep writes, never other files.
_OWNED = ("runs", "dense", "figures", "results.csv", "results.json", "critical.json", "summary.md", SWEEP_FILE)
_PATH_METHODS = ("magnitude", "synflow", "connect")


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; ``str()`` says how many runs are finished and kept."""


@dataclass
class CompareResult:
    out: Path
    rows: list[dict[str, Any]]
    critical: list[dict[str, Any]]
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --- the output directory -----------------------------------------------------------------


def _claim_out(out: Path, config: SweepConfig, force: bool) -> bool:
    """Check ``out`` can hold this sweep (clear it under ``force``); True if it already does."""
    return claim_out(out, config.identity(), identity_file=SWEEP_FILE, field="sweep", units=("runs", "dense"),
                     owned=_OWNED, force=force)


def _write_sweep(out: Path, config: SweepConfig) -> None:
    atomic_write_json(out / SWEEP_FILE, {
        "format": SWEEP_FORMAT,
        "sweep": config.identity(),
        "environment": {"device": config.device, "data_root": config.data_root, "torch": torch.__version__,
                        "threads": torch.get_num_threads(), "created": time.strftime("%Y-%m-%dT%H:%M:%S")},
        "notes": {
            "levels": "compression = total / remaining prunable (Linear/conv) weights = 10^exponent",
            "init": "prune at initialisation, then train the sparse net for budget.epochs",
            "post": "train dense for budget.epochs (cached per seed and variant), prune, fine-tune for "
                    "budget.finetune_epochs; magnitude+l1 / magnitude+l1+connect prune the L1- / L1+CoNNect-regularised "
                    "dense net; imp rewinds to initialisation, retrains budget.epochs per round and at the end",
            "iterations": "rounds of the iterated scores (synflow, connect)",
            "flops": "multiply-accumulates for one input: nonzero weights x output positions per Linear/conv layer",
        },
    })


def _run_dir(out: Path, spec: RunSpec) -> Path:
    return out / "runs" / spec.name


def _finished(out: Path, spec: RunSpec) -> bool:
    return finished(_run_dir(out, spec) / METRICS)


def path_runs(config: SweepConfig) -> list[RunSpec]:
    """The runs the surviving-paths figures draw (their ``model.pt`` is kept): the
    first seed, the ``init`` protocol (else ``post``), magnitude / SynFlow /
    CoNNect (or the first methods run), at three levels spread over the grid (10^1, 10^2,
    10^3 for the default one)."""
    protocol = "init" if "init" in config.protocols else "post"
    available = config.methods_in(protocol)
    methods = [m for m in _PATH_METHODS if m in available]
    methods += [m for m in available if m not in methods][: max(0, 2 - len(methods))]
    levels = config.levels
    if len(levels) > 3:  # the levels nearest the 1/6, 1/2 and 5/6 points of the exponent range
        exps = [math.log10(c) for c in levels]
        targets = [exps[0] + q * (exps[-1] - exps[0]) for q in (1 / 6, 1 / 2, 5 / 6)]
        picks = sorted({min(range(len(exps)), key=lambda i: (abs(exps[i] - t), i)) for t in targets})
        levels = [levels[i] for i in picks]
    return [RunSpec(protocol, m, c, config.seeds[0]) for m in methods for c in levels]


# --- the sweep ------------------------------------------------------------------------------


def compare(
    config: SweepConfig,
    out: str | os.PathLike,
    *,
    force: bool = False,
    progress: bool = True,
    save_models: str = "paths",
    figures: bool = True,
    debug: bool = False,
    jobs: int = 1,
) -> CompareResult:
    """Run (or resume) the sweep ``config`` into ``out`` and write the tables,
    ``critical.json``, ``summary.md`` and (``figures``) the figures.

    One directory per run; a run's ``metrics.json`` is written last and marks it
    finished, so calling again with the same config resumes and skips finished runs.

    Parameters
    ----------
    config : SweepConfig
        Model, dataset, methods, protocols (``init``, ``post``), levels, seeds, budgets.
    out : str or PathLike
        The output directory; one that holds a different sweep is refused unless ``force``.
    force : bool
        Delete the results of a different sweep found in ``out``.
    progress : bool
        Show a progress bar.
    save_models : {"paths", "all", "none"}
        Keep ``model.pt`` for the runs the surviving-paths figures draw, for every
        run, or for none.
    figures : bool
        Draw the figures into ``out/figures``.
    debug : bool
        A failing run raises at once instead of being recorded in its ``error.txt``.
    jobs : int
        Worker processes for the runs (``netgraph compare`` uses :func:`default_jobs`);
        each gets an equal share of torch's threads, so with one thread per run the
        results do not depend on ``jobs``. Workers are spawned: a script that calls
        ``compare`` with ``jobs > 1`` needs the ``if __name__ == "__main__":`` guard.

    Returns
    -------
    CompareResult
        ``rows`` (one dict per run), ``critical`` (critical compression per method
        and protocol), what was computed, skipped and failed.

    Raises
    ------
    NetgraphError
        On bad input, before anything is written; after the sweep if some runs
        failed (the others are kept).
    SweepInterrupted
        On Ctrl-C; finished runs are kept.

    Examples
    --------
    >>> import tempfile, netgraph as ng
    >>> from netgraph.experiments import SweepConfig
    >>> config = SweepConfig(model="mlp", dataset="synthetic", methods=["magnitude", "synflow"],
    ...                      levels=[10, 100], protocols=["init"], epochs=1)
    >>> result = ng.compare(config, tempfile.mkdtemp(), progress=False, figures=False)
    >>> [(row["method"], row["target_compression"]) for row in result.rows]
    [('magnitude', 10.0), ('magnitude', 100.0), ('synflow', 10.0), ('synflow', 100.0)]
    """
    started = time.perf_counter()
    if save_models not in SAVE_MODELS:
        raise NetgraphError(f"save_models must be one of {', '.join(SAVE_MODELS)}, got {save_models!r}")
    if jobs < 1:
        raise NetgraphError(f"jobs must be >= 1, got {jobs}")
    out = Path(out).expanduser()
    if not force:
        _claim_out(out, config, force=False)  # refuse a different sweep before loading any data
    ctx = SweepContext(config, out)  # loads the data, checks every level leaves a weight
    _claim_out(out, config, force)
    out.mkdir(parents=True, exist_ok=True)
    _write_sweep(out, config)

    specs = plan(config)
    result = CompareResult(out, [], [], skipped=[s.name for s in specs if _finished(out, s)])
    try:
        _run_missing(ctx, specs, result, save_models, progress, debug, jobs)
    except KeyboardInterrupt:
        done = sum(_finished(out, s) for s in specs)
        raise SweepInterrupted(
            f"interrupted: {done} of {len(specs)} runs are finished and kept in {out}; "
            "run the same command again to resume"
        ) from None

    result.rows = load_rows(out, specs)
    result.critical = critical_compressions(result.rows)
    write_tables(out, result.rows)
    atomic_write_json(out / "critical.json", {"definition": CRITICAL_DEFINITION, "critical": result.critical})
    if figures:
        if progress:
            logger.info("compare: drawing figures into %s", out / "figures")
        written, notes = write_figures(out, config, result.rows, ctx, debug)
        result.figures, result.notes = written, result.notes + notes
    result.seconds = time.perf_counter() - started
    write_summary(out, config, result, ctx)
    if result.failed:
        first, why = next(iter(result.failed.items()))
        raise NetgraphError(
            f"{len(result.failed)} of {len(specs)} runs failed (first: {first}: {why}; see "
            f"{out / 'runs'}/<run>/error.txt); the others are in {out}, re-run to retry"
        )
    return result


def _run_missing(ctx: SweepContext, specs: Sequence[RunSpec], result: CompareResult, save_models: str,
                 progress: bool, debug: bool, jobs: int) -> None:
    """Run every unfinished run of ``specs`` (and the dense runs they need, once),
    recording in ``result`` which were computed and which failed: a failed run
    leaves ``error.txt`` and no record, so the next invocation retries it.
    With ``jobs > 1`` the dense runs, then the runs, go to that many worker processes."""
    from tqdm import tqdm

    out = result.out
    keep = set(path_runs(ctx.config)) if save_models == "paths" else set()
    todo = [s for s in specs if not _finished(out, s)]
    dense_todo = {(s.variant, s.seed) for s in todo} | {("plain", s.seed) for s in todo}
    dense_todo = sorted(k for k in dense_todo if not ctx.dense_done(*k))
    units = [(spec, save_models == "all" or spec in keep) for spec in todo]
    bar = tqdm(total=len(todo) + len(dense_todo), desc="compare", unit="run", disable=not progress,
               dynamic_ncols=True, file=sys.stderr)

    def record(name: str, failure: str | None) -> None:
        if failure is None:
            result.computed.append(name)
        else:
            result.failed[name] = failure
        bar.update()

    with bar:
        if jobs > 1 and len(dense_todo) + len(units) > 1:
            _run_in_workers(ctx, dense_todo, units, jobs, debug, bar, record)
            return
        for variant, seed in dense_todo:
            bar.set_postfix_str(f"dense-{variant}-s{seed}")
            ctx.dense(variant, seed)
            bar.update()
        for spec, save_model in units:
            bar.set_postfix_str(spec.name)
            record(spec.name, _attempt(ctx, spec, save_model, debug))


def _attempt(ctx: SweepContext, spec: RunSpec, save_model: bool, debug: bool) -> str | None:
    """Run ``spec``; None when it finished, else why it failed (its ``error.txt``
    holds the traceback; ``debug`` raises instead)."""
    folder = _run_dir(ctx.out, spec)
    try:
        run_one(ctx, spec, folder, save_model=save_model)
        (folder / "error.txt").unlink(missing_ok=True)
        return None
    except Exception as error:  # noqa: BLE001 - one failed run must not lose the others
        if debug:
            raise
        atomic_write_text(folder / "error.txt", traceback.format_exc())
        return f"{type(error).__name__}: {error_line(error)}"


# --- worker processes -----------------------------------------------------------------------

#: The sweep context of a worker process (each worker loads the data once).
_WORKER_CONTEXT: SweepContext | None = None


def default_jobs(device: str | None) -> int:
    """Worker processes ``compare`` uses by default: one per CPU core this process may
    use when the runs go to the CPU (runs are small, so processes scale where threads
    do not), one when they go to a GPU."""
    if pick_device(device).type != "cpu":
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _workload(config: SweepConfig, spec: RunSpec) -> tuple[int, bool]:
    """A run's size, to hand the workers the longest runs first (so none idles at the
    end while another finishes a long one): the epochs it trains, then whether it
    iterates a score (``config.iterations`` rounds of SynFlow or CoNNect)."""
    if spec.method == "imp":
        epochs = config.imp_rounds * config.epochs  # imp_rounds - 1 retrainings, then the ticket
    else:
        epochs = config.epochs if spec.protocol == "init" else config.finetune_epochs
    return epochs, spec.iterated


def _worker_start(config: SweepConfig, out: Path, threads: int) -> None:
    global _WORKER_CONTEXT
    torch.set_num_threads(threads)
    _WORKER_CONTEXT = SweepContext(config, out)


def _worker_dense(variant: str, seed: int) -> None:
    assert _WORKER_CONTEXT is not None
    _WORKER_CONTEXT.dense(variant, seed)


def _worker_run(spec: RunSpec, save_model: bool, debug: bool) -> str | None:
    assert _WORKER_CONTEXT is not None
    return _attempt(_WORKER_CONTEXT, spec, save_model, debug)


def _run_in_workers(ctx: SweepContext, dense_todo: Sequence[tuple[str, int]],
                    units: Sequence[tuple[RunSpec, bool]], jobs: int, debug: bool, bar: Any,
                    record: Any) -> None:
    """The dense runs, then the runs, in ``jobs`` spawned worker processes that share
    the machine's threads. Every run reads only its seed and the dense runs on disk,
    so the results equal a one-process sweep whose torch uses as many threads as each
    worker (one per worker on a machine with ``jobs`` cores)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, torch.get_num_threads() // jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_start, initargs=(ctx.config, ctx.out, threads)) as pool:
        try:
            dense = [pool.submit(_worker_dense, variant, seed) for variant, seed in dense_todo]
            for future in dense:
                future.result()  # a dense run that fails stops the sweep, as in one process
                bar.update()
            ordered = sorted(units, key=lambda unit: _workload(ctx.config, unit[0]), reverse=True)
            pending = {pool.submit(_worker_run, spec, save_model, debug): spec.name for spec, save_model in ordered}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    record(pending.pop(future), future.result())
        except BrokenProcessPool:
            raise NetgraphError(f"a worker process of the sweep ended abruptly; the finished runs are kept in "
                                f"{ctx.out}, run again to resume (jobs=1 runs in this process)") from None
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


# --- tables ---------------------------------------------------------------------------------


def load_rows(out: str | os.PathLike, specs: Sequence[RunSpec]) -> list[dict[str, Any]]:
    """The results rows of the finished runs among ``specs`` (keys :data:`RESULT_KEYS`)."""
    rows = []
    for spec in specs:
        path = _run_dir(Path(out), spec) / METRICS
        if path.exists():
            metrics = json.loads(path.read_text())
            rows.append({key: metrics[key] for key in RESULT_KEYS})
    return rows


def write_tables(out: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """``results.json`` (every key) and ``results.csv`` (all but ``layers``; lists as
    JSON, None as an empty cell)."""
    atomic_write_json(out / "results.json", list(rows))
    atomic_write_text(out / "results.csv", csv_text(rows, [k for k in RESULT_KEYS if k != "layers"]))


# --- critical compression -------------------------------------------------------------------

CRITICAL_DEFINITION = {
    "critical_compression": "last level before the first at which, in some seed, a layer collapsed or the network disconnected",
    "first_disconnected": "smallest level at which the network is disconnected in some seed",
    "first_collapsed": "smallest level at which some layer lost all its weights in some seed",
}


def critical_compressions(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per protocol and method: the critical compression (the last level before the
    first one where a layer collapsed or the network disconnected, in any seed) and
    the first level at which the network disconnects (None when it never does)."""
    groups: dict[tuple[str, str], dict[float, list[Mapping]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[(row["protocol"], row["method"])][float(row["target_compression"])].append(row)
    out = []
    for (protocol, method), by_level in groups.items():
        failed = [c for c, rs in by_level.items() if any(r["disconnected"] or r["collapsed_layers"] for r in rs)]
        intact = [c for c in by_level if not failed or c < min(failed)]
        broken = sorted(c for c, rs in by_level.items() if any(r["disconnected"] for r in rs))
        collapsed = sorted(c for c, rs in by_level.items() if any(r["collapsed_layers"] for r in rs))
        critical = max(intact) if intact else None
        out.append({
            "protocol": protocol,
            "method": method,
            "critical_compression": critical,
            "critical_exponent": None if critical is None else exponent_of(critical),
            "first_disconnected": broken[0] if broken else None,
            "first_disconnected_exponent": exponent_of(broken[0]) if broken else None,
            "first_collapsed": collapsed[0] if collapsed else None,
            "levels": sorted(by_level),
        })
    order = {p: i for i, p in enumerate(PROTOCOLS)}
    return sorted(out, key=lambda r: (order.get(r["protocol"], 9), _method_order(r["method"])))


def _method_order(method: str) -> tuple[int, str]:
    names = all_methods()
    return (names.index(method) if method in names else len(names), method)


# --- figures ---------------------------------------------------------------------------------


def write_figures(out: Path, config: SweepConfig, rows: Sequence[Mapping[str, Any]], ctx: SweepContext,
                  debug: bool = False) -> tuple[list[Path], list[str]]:
    """Every figure into ``out/figures`` (PNG + HTML), through :mod:`netgraph.plots`.
    A figure that fails is reported in the notes, not raised: the tables stand."""
    from netgraph import plots

    folder = out / "figures"
    written: list[Path] = []
    notes: list[str] = []
    if not rows:
        return written, ["no finished runs: no figures"]
    jobs = [
        ("accuracy vs compression", lambda: plots.accuracy_vs_compression(rows, folder, accuracy="both")),
        ("effective vs nominal compression", lambda: plots.effective_vs_nominal(rows, folder)),
        ("per-layer density", lambda: plots.layer_density_heatmap(rows, folder)),
        ("log phi vs compression", lambda: plots.log_phi_vs_compression(rows, folder)),
    ]
    for label, job in jobs:
        try:
            written += list(job())
        except Exception as error:  # noqa: BLE001 - a figure must not lose the results
            if debug:
                raise
            notes.append(f"figure '{label}' failed: {type(error).__name__}: {error}")
    by_method: dict[str, list[RunSpec]] = defaultdict(list)
    for spec in path_runs(config):
        by_method[spec.method].append(spec)
    for method, specs in by_method.items():
        snapshots, missing = [], []
        for spec in specs:
            path = _run_dir(out, spec) / MODEL
            if not path.exists():
                missing.append(spec.name)
                continue
            snapshots.append(_snapshot(ctx, spec, path))
        if missing:
            notes.append(f"surviving paths of {method}: no model.pt for {', '.join(missing)} (save_models='none'?)")
        if not snapshots:
            continue
        protocol, seed = specs[0].protocol, specs[0].seed
        try:
            written += list(plots.surviving_paths(
                snapshots, folder, f"surviving_paths_{protocol}_{_slug(method)}",
                title=f"Surviving input→output paths: {config.model} on {config.dataset}, {method} "
                      f"({plots.compression.PROTOCOL_TITLES.get(protocol, protocol)}), seed {seed}",
                subtitle=f"checkpoints runs/{protocol}-{method}-c<level>-s{seed}/model.pt; panel titles: target "
                         "compression",
            ))
        except Exception as error:  # noqa: BLE001
            if debug:
                raise
            notes.append(f"figure 'surviving paths of {method}' failed: {type(error).__name__}: {error}")
    return written, notes


def _slug(method: str) -> str:
    return method.replace("+", "_")


def _snapshot(ctx: SweepContext, spec: RunSpec, path: Path) -> tuple:
    from netgraph.connectivity.propagate import flows
    from netgraph.connectivity.report import analyze
    from netgraph.graph.tracer import trace

    model = ctx.fresh_model(spec.seed)
    model.load_state_dict(torch.load(path, map_location=ctx.device, weights_only=True))
    graph = trace(model, input_shape=ctx.input_shape)
    result = flows(graph)
    report = analyze(graph, result)
    from netgraph.plots.compression import level_label
    from netgraph.plots.model import fmt_compression

    label = f"{level_label(spec.compression)}× (effective {fmt_compression(report.effective_compression)})"
    return label, graph, result, report


# --- summary ---------------------------------------------------------------------------------


def _level_header(compression: float) -> str:
    x = exponent_of(compression)
    if abs(x * 100 - round(x * 100)) < 1e-6:
        return f"10^{x:g}"
    return f"{level_label(compression)}x"


def accuracy_table(rows: Sequence[Mapping[str, Any]], protocol: str, levels: Sequence[float]) -> list[dict[str, str]]:
    """Markdown rows: one per method, with the accuracy after fine-tuning (%) per level
    (keyed by its header), mean ± std over seeds (the mean alone for one seed);
    ``†`` disconnected in some seed, ``*`` a layer collapsed (but connected)."""
    cells: dict[str, dict[float, list[Mapping]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row["protocol"] == protocol:
            cells[row["method"]][float(row["target_compression"])].append(row)
    table = []
    for method in sorted(cells, key=_method_order):
        line = {"method": method}
        for level in levels:
            runs = cells[method].get(float(level), [])
            accuracies = [r["accuracy_after_finetune"] for r in runs]
            if not runs:
                text = ""
            elif len(runs) == 1:
                text = f"{100 * mean_std(accuracies)[0]:.1f}"
            else:
                text = pm(accuracies)
            mark = "†" if any(r["disconnected"] for r in runs) else ("*" if any(r["collapsed_layers"] for r in runs) else "")
            line[_level_header(level)] = text + mark
        table.append(line)
    return table


def _dense_accuracies(ctx: SweepContext, config: SweepConfig) -> dict[str, float]:
    found: dict[str, list[float]] = defaultdict(list)
    for variant in DENSE_VARIANTS:
        for seed in config.seeds:
            path = ctx.dense_dir(variant, seed) / METRICS
            if path.exists():
                found[variant].append(json.loads(path.read_text())["accuracy"])
    return {k: sum(v) / len(v) for k, v in found.items()}


def write_summary(out: Path, config: SweepConfig, result: CompareResult, ctx: SweepContext) -> None:
    rows = result.rows
    dense = _dense_accuracies(ctx, config)
    seeds = ", ".join(map(str, config.seeds))
    exps = ", ".join(f"{exponent_of(c):g}" for c in config.levels)
    lines = [
        f"# Pruning comparison: {config.model} on {config.dataset}",
        "",
        "## Setup",
        "",
        f"- protocols: {', '.join(config.protocols)}; seeds: {seeds}; compression levels 10^x for x in {exps} "
        "(compression = total / remaining prunable weights)",
    ]
    for protocol in config.protocols:
        lines.append(f"- {protocol} methods: {', '.join(config.methods_in(protocol))}")
    lines += [
        f"- budget: dense / sparse-from-init training {config.epochs} epoch(s), fine-tuning after pruning "
        f"{config.finetune_epochs} epoch(s); {config.optimizer}, lr {config.lr:g} (cosine), batch {config.batch_size}",
        f"- SynFlow / CoNNect score rounds: {config.iterations}; SNIP / GraSP batches: {config.score_batches}; "
        f"IMP: {config.imp_rounds} rounds, rewinding to initialisation, {config.epochs} epoch(s) per retraining",
        f"- regularised dense training: L1 lambda_1 = {config.lambda_1:g} (magnitude+l1); the same L1 and "
        f"CoNNect lambda_r = {config.lambda_r:g} as a decoupled step (magnitude+l1+connect)",
        "- dense accuracy (mean over seeds): "
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in dense.items()),
        f"- runs: {len(rows)} finished ({len(result.computed)} computed now, {len(result.skipped)} resumed"
        + (f", {len(result.failed)} failed" if result.failed else "") + f"); wall time {result.seconds:.0f} s",
        "",
        f"## Test accuracy (%), mean{' ± std' if len(config.seeds) > 1 else ''} over {len(config.seeds)} seed(s)",
        "",
        "After training (init) or fine-tuning (post). † disconnected in some seed; * a layer collapsed.",
    ]
    headers = ["method"] + [_level_header(c) for c in config.levels]
    for protocol in config.protocols:
        body = accuracy_table(rows, protocol, config.levels)
        if body:
            what = "pruned at initialisation, then trained" if protocol == "init" else "pruned after training, then fine-tuned"
            lines += ["", f"### {protocol}: {what}", "", markdown_table(body, headers)]
    lines += [
        "",
        "## Critical compression",
        "",
        "Critical: the last level before the first at which, in some seed, a layer "
        "collapsed or the network disconnected; then the first disconnected level.",
        "",
        markdown_table([
            {"protocol": r["protocol"], "method": r["method"],
             "critical": _level_header(r["critical_compression"]) if r["critical_compression"] else "none",
             "first disconnected": _level_header(r["first_disconnected"]) if r["first_disconnected"] else "never",
             "first collapse": _level_header(r["first_collapsed"]) if r["first_collapsed"] else "never"}
            for r in result.critical
        ], ["protocol", "method", "critical", "first disconnected", "first collapse"]),
    ]
    # The figures drawn now, else those an earlier invocation drew (resumed with figures off).
    pngs = sorted(p for p in result.figures if p.suffix == ".png") or sorted((out / "figures").glob("*.png"))
    if pngs:
        lines += ["", "## Figures", ""]
        for png in pngs:
            rel = png.relative_to(out).as_posix()
            html = png.with_suffix(".html")
            link = f" ([interactive]({html.relative_to(out).as_posix()}))" if html.exists() else ""
            lines.append(f"- [{png.stem.replace('_', ' ')}]({rel}){link}")
            lines.append(f"  ![{png.stem}]({rel})")
    if result.notes or result.failed:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in result.notes]
        lines += [f"- run {name} failed: {why}" for name, why in result.failed.items()]
    lines += ["", "Tables: [results.csv](results.csv), [results.json](results.json), "
              "[critical.json](critical.json); sweep: [sweep.json](sweep.json).", ""]
    atomic_write_text(out / "summary.md", "\n".join(lines))

