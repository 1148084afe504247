"""``netgraph train``: the training engine from the shell."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.console import Console

from netgraph.atomic import atomic_write_json
from netgraph.cli.app import app, join_torchrun
from netgraph.cli.paths import RUN_FILES, run_directory
from netgraph.errors import NetgraphError


def _regularizer(model, input_shape, lambda_r: float, structured: bool):  # type: ignore[no-untyped-def]
    if lambda_r <= 0:
        return None
    from netgraph.connect.regularizer import CoNNect

    return CoNNect(model, input_shape=input_shape, structured=structured, gates=structured)


@app.command("train")
def train_command(
    model: Annotated[str, typer.Argument(help="Model name (lenet300, lenet5, resnet20, vgg16_bn_cifar, torchvision name, package.module:factory).")],
    dataset: Annotated[str, typer.Option(help="mnist5k, digits, synthetic (bundled); mnist, fashionmnist, cifar10, cifar100, imagefolder (from --data-root).")] = "mnist5k",
    out: Annotated[Path, typer.Option(help="Run directory: checkpoint.pt, metrics.jsonl, model.pt, params.json.")] = Path("netgraph-run"),
    epochs: Annotated[int, typer.Option(help="Epochs to train (with --resume: in total).")] = 10,
    batch_size: Annotated[int, typer.Option(help="Samples per step (global, over all ranks).")] = 128,
    optimizer: Annotated[Literal["sgd", "adam"], typer.Option(help="Optimiser.")] = "sgd",
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 0.1,
    momentum: Annotated[float, typer.Option(help="SGD momentum.")] = 0.9,
    weight_decay: Annotated[float, typer.Option(help="L2 weight decay.")] = 5e-4,
    schedule: Annotated[Literal["cosine", "step", "none"], typer.Option(help="Learning-rate schedule.")] = "cosine",
    lambda_r: Annotated[float, typer.Option(help="Weight of the CoNNect regularizer R.")] = 0.0,
    lambda_r_warmup: Annotated[int, typer.Option(help="Epochs over which lambda_r ramps up from 0.")] = 0,
    lambda_1: Annotated[float, typer.Option(help="Weight of the L1 penalty on prunable weights.")] = 0.0,
    structured: Annotated[bool, typer.Option(help="Structured CoNNect (slice L2 norms, BN gates).")] = False,
    decoupled_reg: Annotated[bool, typer.Option(help="Apply CoNNect's gradient as its own step outside the optimiser (recommended with Adam).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of every random number generator, in [0, 2**32).")] = 0,
    data_root: Annotated[Optional[Path], typer.Option(help="Directory holding torchvision datasets / ImageFolder.")] = None,
    download: Annotated[bool, typer.Option(help="Allow torchvision to download the dataset (needs internet).")] = False,
    device: Annotated[Optional[str], typer.Option(help="cuda, cuda:1, cpu (default: CUDA if available).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in OUT from its last finished epoch.")] = False,
    force: Annotated[bool, typer.Option(help="Replace a run already in OUT.")] = False,
    max_steps_per_epoch: Annotated[Optional[int], typer.Option(help="Cut each epoch after this many steps (quick runs).")] = None,
) -> None:
    """Train MODEL on DATASET with task loss + lambda_r * CoNNect + lambda_1 * L1.

    Runs under ``torchrun`` as distributed data parallel (gloo on CPU, NCCL on GPU).
    """
    from netgraph.cli.loading import resolve_model
    from netgraph.device import pick_device
    from netgraph.training.data import load_dataset, make_loaders
    from netgraph.training.engine import TrainConfig, cleanup_distributed, seed_everything, train
    from netgraph.training.runlock import job_run_lock

    if resume and force:
        raise NetgraphError("give --resume or --force, not both")
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum,
        weight_decay=weight_decay, schedule=schedule, lambda_r=lambda_r, lambda_r_warmup_epochs=lambda_r_warmup,
        lambda_1=lambda_1, seed=seed, device=device, max_steps_per_epoch=max_steps_per_epoch,
        decoupled_reg=decoupled_reg,
    )
    pick_device(device)  # a device this machine lacks fails now, not after loading data
    run_directory(out, resume=resume, force=force)
    splits = load_dataset(dataset, data_root=str(data_root) if data_root else None, download=download, seed=seed)
    seed_everything(seed)
    net, shape = resolve_model(model, None, splits.input_shape, splits.num_classes)
    params = {"command": "train", "model": model, "dataset": dataset, "input_shape": list(shape),
              "num_classes": splits.num_classes, "structured": structured}
    rank, world_size = join_torchrun()
    try:
        train_loader, test_loader = make_loaders(splits, batch_size, seed=seed, distributed=world_size > 1)
        regularizer = _regularizer(net, shape, lambda_r, structured)

        def prepare() -> None:  # on rank 0, holding the lock
            run_directory(out, resume=resume, force=force)  # again, now that no other job can write it
            if force:
                for name in RUN_FILES:
                    (out / name).unlink(missing_ok=True)
            if not resume:
                atomic_write_json(out / "params.json", {**params, "config": asdict(config)})

        with job_run_lock(out, prepare):
            result = train(net, train_loader, test_loader, config, regularizer=regularizer, out_dir=out,
                           resume=resume, run=params)
    finally:
        cleanup_distributed()
    if rank == 0:
        Console().print(
            f"final test accuracy {result.final_accuracy:.4f} (best {result.best_accuracy:.4f}); "
            f"weights in {out / 'model.pt'}"
        )
