"""``netgraph train``: the training engine from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from netgraph.cli.app import app
from netgraph.errors import NetgraphError


def _regularizer(model, input_shape, lambda_r: float, structured: bool):  # type: ignore[no-untyped-def]
    if lambda_r <= 0:
        return None
    from netgraph.connect.regularizer import CoNNect

    return CoNNect(model, input_shape=input_shape, structured=structured, gates=structured)


@app.command("train")
def train_command(
    model: Annotated[str, typer.Argument(help="Model name (lenet300, lenet5, resnet20, vgg16_bn_cifar, torchvision name, package.module:factory).")],
    dataset: Annotated[str, typer.Option(help="mnist5k, digits, synthetic, mnist, fashionmnist, cifar10, cifar100, imagefolder.")] = "mnist5k",
    out: Annotated[Path, typer.Option(help="Run directory: checkpoint.pt, metrics.jsonl, model.pt.")] = Path("netgraph-run"),
    epochs: int = 10,
    batch_size: int = 128,
    optimizer: Annotated[str, typer.Option(help="sgd or adam.")] = "sgd",
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    schedule: Annotated[str, typer.Option(help="cosine, step or none.")] = "cosine",
    lambda_r: Annotated[float, typer.Option(help="Weight of the CoNNect regularizer R.")] = 0.0,
    lambda_r_warmup: Annotated[int, typer.Option(help="Epochs over which lambda_r ramps up from 0.")] = 0,
    lambda_1: Annotated[float, typer.Option(help="Weight of the L1 penalty on prunable weights.")] = 0.0,
    structured: Annotated[bool, typer.Option(help="Structured CoNNect (slice L2 norms, BN gates).")] = False,
    seed: int = 0,
    data_root: Annotated[Optional[Path], typer.Option(help="Directory holding torchvision datasets / ImageFolder.")] = None,
    download: Annotated[bool, typer.Option(help="Allow torchvision to download the dataset (needs internet).")] = False,
    device: Annotated[Optional[str], typer.Option(help="cuda, cuda:1, cpu (default: CUDA if available).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/checkpoint.pt.")] = False,
    max_steps_per_epoch: Optional[int] = None,
) -> None:
    """Train MODEL on DATASET with task loss + lambda_r * CoNNect + lambda_1 * L1.

    Runs under ``torchrun`` as distributed data parallel (gloo on CPU, NCCL on GPU).
    """
    from netgraph.training.data import load_dataset, make_loaders
    from netgraph.training.engine import (
        TrainConfig,
        cleanup_distributed,
        seed_everything,
        setup_distributed,
        train,
    )
    from netgraph.training.models import build_model

    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr, momentum=momentum,
        weight_decay=weight_decay, schedule=schedule, lambda_r=lambda_r, lambda_r_warmup_epochs=lambda_r_warmup,
        lambda_1=lambda_1, seed=seed, device=device, max_steps_per_epoch=max_steps_per_epoch,
    )
    if out.exists() and not out.is_dir():
        raise NetgraphError(f"--out {out} exists and is not a directory")
    splits = load_dataset(dataset, data_root=str(data_root) if data_root else None, download=download, seed=seed)
    rank, world_size, _ = setup_distributed()
    try:
        train_loader, test_loader = make_loaders(splits, batch_size, seed=seed, distributed=world_size > 1)
        seed_everything(seed)
        net = build_model(model, num_classes=splits.num_classes, input_shape=splits.input_shape)
        regularizer = _regularizer(net, splits.input_shape, lambda_r, structured)
        result = train(net, train_loader, test_loader, config, regularizer=regularizer, out_dir=out, resume=resume)
    finally:
        cleanup_distributed()
    if rank == 0:
        Console().print(
            f"final test accuracy {result.final_accuracy:.4f} (best {result.best_accuracy:.4f}); "
            f"weights in {out / 'model.pt'}"
        )
