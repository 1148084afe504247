"""``netgraph compare``: prune with every method at every compression level, train, measure, plot."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.console import Console

from netgraph.cli.app import app
from netgraph.cli.paths import writable_directory
from netgraph.errors import NetgraphError

_LEVELS_HELP = (
    "Compression levels, comma-separated, in the units of prune: 100 or 100x (total/remaining weights), "
    "99% (sparsity), 10^2 (decade exponent); 10^0.5:10^3.5:0.5 is a range in decades."
)


def _words(text: Optional[str]) -> Optional[list[str]]:
    return None if text is None else [w.strip() for w in text.split(",") if w.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(w) for w in _words(text) or []]
    except ValueError:
        raise NetgraphError(f"--seeds must be comma-separated integers like 0,1,2, got '{text}'") from None


@app.command("compare")
def compare_command(
    model: Annotated[str, typer.Option(help="Model to prune (netgraph's registry: lenet300, mlp, lenet5, ...).")] = "lenet300",
    dataset: Annotated[str, typer.Option(help="Dataset (mnist5k, digits, synthetic need no download).")] = "mnist5k",
    methods: Annotated[Optional[str], typer.Option(
        help="Comma list of methods (default: all). Score methods: random, magnitude, magnitude_layerwise, snip, "
             "grasp, synflow, connect; post-only: magnitude+l1, magnitude+l1+connect, imp.")] = None,
    protocols: Annotated[str, typer.Option(help="init (prune at initialisation) and/or post (prune after training).")] = "init,post",
    levels: Annotated[str, typer.Option(help=_LEVELS_HELP)] = "10^0.5:10^3.5:0.5",
    seeds: Annotated[str, typer.Option(help="Comma list of seeds (each: initialisation and batch order).")] = "0,1,2",
    epochs: Annotated[int, typer.Option(help="Budget: epochs of dense training and of sparse training from init.")] = 3,
    finetune_epochs: Annotated[int, typer.Option(help="Budget: fine-tuning epochs after pruning a trained net (post).")] = 1,
    lambda_r: Annotated[float, typer.Option("--lambda-r", help="CoNNect weight (a decoupled step) of the dense run magnitude+l1+connect prunes.")] = 30.0,
    lambda_1: Annotated[float, typer.Option("--lambda-1", help="L1 weight of the dense runs magnitude+l1 and magnitude+l1+connect prune.")] = 5e-4,
    iterations: Annotated[int, typer.Option(help="Rounds of the iterated scores (SynFlow, CoNNect), as in the papers.")] = 100,
    imp_rounds: Annotated[int, typer.Option(help="Rounds of iterative magnitude pruning (rewinding to init).")] = 3,
    score_batches: Annotated[int, typer.Option(help="Training batches SNIP and GraSP score with.")] = 2,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate (cosine schedule).")] = 1e-2,
    data_root: Annotated[Optional[str], typer.Option(help="Directory of on-disk datasets (mnist, cifar10, ...).")] = None,
    out: Annotated[Path, typer.Option(help="Results directory; re-running with the same one resumes.")] = Path("netgraph-results"),
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1 ... (default: CUDA if present).")] = None,
    force: Annotated[bool, typer.Option(help="Delete the results of a different sweep in --out and start over.")] = False,
    save_models: Annotated[Literal["paths", "all", "none"], typer.Option(help="Keep model.pt for the runs the path figures draw, for all runs, or for none.")] = "paths",
    figures: Annotated[bool, typer.Option(help="Draw the figures.")] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    jobs: Annotated[Optional[int], typer.Option(
        help="Worker processes for the runs (default: one per CPU core on the CPU, one on a GPU); results do "
             "not depend on it.")] = None,
) -> int:
    """Compare pruning methods across compression levels (and seeds), pruning at
    initialisation and after training; write OUT/results.csv|json, critical.json,
    summary.md and figures/. With no options: LeNet-300-100 on mnist5k, every method,
    both protocols."""
    from netgraph.experiments.comparison import (
        SweepConfig,
        SweepInterrupted,
        compare,
        default_jobs,
        parse_levels,
    )

    writable_directory(out, "--out")
    config = SweepConfig(
        model=model, dataset=dataset, methods=_words(methods), protocols=_words(protocols) or [],
        levels=parse_levels(levels), seeds=_seeds(seeds), epochs=epochs, finetune_epochs=finetune_epochs,
        lambda_r=lambda_r, lambda_1=lambda_1, iterations=iterations, imp_rounds=imp_rounds,
        score_batches=score_batches, batch_size=batch_size, lr=lr, data_root=data_root, device=device,
    )
    try:
        result = compare(config, out, force=force, progress=progress, save_models=save_models, figures=figures,
                         jobs=default_jobs(device) if jobs is None else jobs,
                         debug=os.environ.get("NETGRAPH_DEBUG", "") not in ("", "0"))
    except SweepInterrupted as stop:
        print(f"error: {stop}", file=sys.stderr)
        raise typer.Exit(130) from None
    console = Console(width=None if Console().is_terminal else 120)
    console.print(
        f"{len(result.rows)} runs ({len(result.computed)} computed, {len(result.skipped)} resumed) "
        f"in {result.seconds:.0f}s -> {out}/results.csv, summary.md, critical.json, {len(result.figures)} figure files"
    )
    for row in result.critical:
        critical = row["critical_compression"]
        broken = row["first_disconnected"]
        console.print(
            f"  {row['protocol']:4} {row['method']:20} critical "
            f"{'none' if critical is None else f'{critical:.4g}x':>8}   first disconnected "
            f"{'never' if broken is None else f'{broken:.4g}x'}"
        )
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    return 0
