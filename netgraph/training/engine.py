"""Training engine: ``task + lambda_r * R + lambda_1 * L1`` with resumable checkpoints.

One call, :func:`train`, runs the whole loop single-process or under ``torchrun``
(DistributedDataParallel). Two properties shape the code:

- non-finite values never reach the weights: a regularizer that returns ``+inf``
  (CoNNect on a disconnected network) is left out of that step's loss, and a step
  whose loss or gradients are not finite is skipped;
- ``resume=True`` reproduces an uninterrupted run exactly: the learning rate and
  ``lambda_r`` are pure functions of the epoch, and the checkpoint holds every RNG
  the loop draws from (global and the train loader's own generators).

A script that works both ways::

    rank, world_size, device = setup_distributed(int(os.environ.get("WORLD_SIZE", 1)),
                                                 int(os.environ.get("LOCAL_RANK", 0)))
    splits = load_dataset("mnist5k")
    train_loader, test_loader = make_loaders(splits, 128, distributed=world_size > 1)
    seed_everything(0)
    model = build_model("lenet300", splits.num_classes, splits.input_shape)
    result = train(model, train_loader, test_loader, TrainConfig(epochs=10), out_dir=Path("run"))
    cleanup_distributed()
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from netgraph.atomic import atomic_torch_save, atomic_write_text
from netgraph.errors import CheckpointError, NetgraphError
from netgraph.modes import eval_mode
from netgraph.parameters import effective_weight, prunable_parameters
from netgraph.text import bounded_list
from netgraph.training.checkpoint import check_state_matches, read_torch_file
from netgraph.training.data import ShardedBatchSampler
from netgraph.training.distributed import (
    all_reduce_sum,
    barrier,
    broadcast_buffers,
    cleanup_distributed,
    get_rank,
    get_world_size,
    is_distributed,
    process_device,
    setup_distributed,
    wrap_ddp,
)
from netgraph.training.runlock import job_run_lock

__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "evaluate",
    "l1_penalty",
    "seed_everything",
    "setup_distributed",
    "cleanup_distributed",
]

logger = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "step", "none")
AMP_MODES = ("auto", "on", "off")
CHECKPOINT, METRICS, MODEL = "checkpoint.pt", "metrics.jsonl", "model.pt"
# Config fields that may change between a run and its resumption without changing
# what the finished epochs computed; any other difference is refused.
RESUMABLE_CHANGES = frozenset({"epochs", "log_every", "device"})


def _nonnegative(value: float) -> bool:
    return math.isfinite(value) and value >= 0


@dataclass
class TrainConfig:
    """Everything that determines a training run (stored in each checkpoint).

    Invalid values raise :class:`~netgraph.errors.NetgraphError` listing every problem.

    Examples
    --------
    >>> import netgraph as ng
    >>> config = ng.TrainConfig(epochs=2, optimizer="adam", lr=1e-3, lambda_r=0.1)
    >>> config.lr_at(1), config.lambda_r_at(1)
    (0.0005, 0.1)
    """

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    step_size: int = 30
    gamma: float = 0.1
    lambda_r: float = 0.0
    lambda_r_warmup_epochs: int = 0
    #: apply ``lambda_r * dR/dw`` as its own step ``w -= lr * lambda_r * dR/dw`` after the
    #: optimiser's, outside Adam's normalisation (as AdamW decouples weight decay)
    decoupled_reg: bool = False
    lambda_1: float = 0.0
    seed: int = 0
    amp: str = "auto"
    device: str | None = None
    log_every: int = 50
    max_steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 0, f"epochs must be >= 0, got {self.epochs}"),
            (0 <= self.seed < 2**32, f"seed must be in [0, 2**32), got {self.seed}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"),
            (math.isfinite(self.lr) and self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (_nonnegative(self.momentum), f"momentum must be >= 0, got {self.momentum}"),
            (_nonnegative(self.weight_decay), f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"),
            (self.step_size >= 1, f"step_size must be >= 1, got {self.step_size}"),
            (math.isfinite(self.gamma) and self.gamma > 0, f"gamma must be > 0, got {self.gamma}"),
            (_nonnegative(self.lambda_r), f"lambda_r must be >= 0, got {self.lambda_r}"),
            (self.lambda_r_warmup_epochs >= 0,
             f"lambda_r_warmup_epochs must be >= 0, got {self.lambda_r_warmup_epochs}"),
            (_nonnegative(self.lambda_1), f"lambda_1 must be >= 0, got {self.lambda_1}"),
            (self.amp in AMP_MODES, f"amp must be one of {AMP_MODES}, got {self.amp!r}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
             f"max_steps_per_epoch must be >= 1, got {self.max_steps_per_epoch}"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise NetgraphError("invalid training config: " + "; ".join(problems))

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch`` (cosine decays to 0 over ``epochs``)."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * epoch / max(self.epochs, 1)))
        if self.schedule == "step":
            return self.lr * self.gamma ** (epoch // self.step_size)
        return self.lr

    def lambda_r_at(self, epoch: int) -> float:
        """``lambda_r`` ramped linearly from 0 over the warm-up epochs, so the task
        loss shapes the weights before connectivity starts to concentrate them."""
        if self.lambda_r_warmup_epochs == 0:
            return self.lambda_r
        return self.lambda_r * min(1.0, epoch / self.lambda_r_warmup_epochs)


@dataclass
class TrainResult:
    final_accuracy: float
    best_accuracy: float
    history: list[dict[str, Any]] = field(default_factory=list)


# --- small pieces ----------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA); call before building a model."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def l1_penalty(model: nn.Module) -> Tensor:
    """Sum of ``|w|`` over Linear and conv weights, read through pruning masks so
    weights already pruned away cost nothing."""
    weights = [effective_weight(module, name) for module, name in prunable_parameters(model)]
    return torch.stack([w.abs().sum() for w in weights]).sum()


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Accuracy and mean cross-entropy over ``loader`` (summed over ranks under DDP)."""
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # correct, loss sum, count
    with eval_mode(model):
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            logits = model(inputs).float()
            totals[0] += (logits.argmax(dim=1) == targets).sum()
            totals[1] += F.cross_entropy(logits, targets, reduction="sum")
            totals[2] += targets.numel()
    correct, loss, count = all_reduce_sum(totals).tolist()
    if count == 0:
        raise NetgraphError("cannot evaluate: the test loader yields no samples")
    return {"accuracy": correct / count, "loss": loss / count}


def _use_amp(mode: str, device: torch.device) -> bool:
    if mode == "on" and device.type != "cuda":
        raise NetgraphError(f"amp='on' needs a CUDA device, training runs on {device}")
    return mode == "on" or (mode == "auto" and device.type == "cuda")


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # One fused kernel per step instead of a pass per operation (2x faster Adam on the
    # CPU); the same update up to float rounding order.
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params) or None
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, fused=fused)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def _all_finite(tensors: Iterable[Tensor]) -> bool:
    """True when every tensor is finite on every rank (one host sync per call).

    A tensor's largest ``|value|`` is NaN or infinite exactly when the tensor holds
    one (``amax`` propagates NaN), and on the CPU it costs a seventh of ``isfinite``
    (~1 ms of a LeNet-300 step otherwise)."""
    peaks = torch.stack([t.detach().abs().amax().double() for t in tensors if t.numel()])
    bad = (~torch.isfinite(peaks)).sum().float()
    return all_reduce_sum(bad).item() == 0


def _loader_generators(loader: DataLoader) -> list[torch.Generator]:
    """The private generators a loader shuffles with (none for the global RNG)."""
    found = [getattr(loader, "generator", None), getattr(loader.sampler, "generator", None),
             getattr(loader.batch_sampler, "generator", None)]
    return list({id(g): g for g in found if g is not None}.values())


def _set_epoch(loader: DataLoader, epoch: int) -> None:
    """Let a DistributedSampler draw this epoch's shuffle (no-op for other samplers)."""
    set_epoch = getattr(loader.sampler, "set_epoch", None)
    if callable(set_epoch):
        set_epoch(epoch)


# --- per-epoch statistics ----------------------------------------------------------


class _EpochStats:
    """Sums kept on the device, so steps never wait on the host; summed over ranks once."""

    MEANS = ("train_loss", "task_loss", "reg", "l1")
    COUNTS = ("reg_inf_steps", "skipped_steps")

    def __init__(self, device: torch.device) -> None:
        # Layout: a sum per mean, a count per mean, then the plain counters.
        self.totals = torch.zeros(2 * len(self.MEANS) + len(self.COUNTS), dtype=torch.float64, device=device)

    def add(self, terms: dict[str, Tensor]) -> None:
        for name, value in terms.items():
            i = self.MEANS.index(name)
            self.totals[i] += value.detach().double()
            self.totals[len(self.MEANS) + i] += 1

    def count(self, name: str) -> None:
        self.totals[2 * len(self.MEANS) + self.COUNTS.index(name)] += 1

    def running_loss(self) -> float:
        return (self.totals[0] / self.totals[len(self.MEANS)].clamp(min=1)).item()

    def summary(self) -> dict[str, float | int | None]:
        """Means over the steps each term was applied in (None: never), and counters."""
        values = all_reduce_sum(self.totals.clone()).tolist()
        n = len(self.MEANS)
        sums, counts, counters = values[:n], values[n:2 * n], values[2 * n:]
        means = {name: (s / c if c else None) for name, s, c in zip(self.MEANS, sums, counts)}
        return means | {name: int(c) for name, c in zip(self.COUNTS, counters)}


# --- the loop ---------------------------------------------------------------------


@dataclass
class _Session:
    """What one run mutates, so the step and epoch functions take one argument."""

    model: nn.Module  # the bare model: checkpoints, L1 and the regularizer read it
    net: nn.Module  # what the forward pass goes through (DDP wrapper or the model)
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    config: TrainConfig
    device: torch.device
    amp: bool
    regularizer: Callable[[], Tensor] | None
    run: Mapping[str, Any] = field(default_factory=dict)  # what the run is: resume refuses another
    params: list[Tensor] = field(default_factory=list)  # the trainable parameters, in optimiser order
    warned_reg: bool = False


def _train_step(s: _Session, inputs: Tensor, targets: Tensor, lambda_r: float, stats: _EpochStats) -> None:
    """One optimiser step; a non-finite regularizer is dropped, a non-finite loss or
    gradient skips the update."""
    s.optimizer.zero_grad(set_to_none=True)
    with torch.autocast(s.device.type, dtype=torch.float16, enabled=s.amp):
        task = _task_loss(s.net(inputs), targets)
    terms = {"task_loss": task}
    loss = task
    reg_grads: list[Tensor | None] = []
    if lambda_r > 0:
        reg = s.regularizer()
        if torch.isfinite(reg):
            terms["reg"] = reg
            if s.config.decoupled_reg:  # its own gradient, kept out of the optimiser's state
                reg_grads = list(torch.autograd.grad(reg, s.params, allow_unused=True))
                reg = reg.detach()
            else:
                loss = loss + lambda_r * reg
        else:
            stats.count("reg_inf_steps")
            if not s.warned_reg:
                s.warned_reg = True
                warnings.warn("regularizer is not finite (disconnected network?): "
                              "leaving it out of the loss for such steps", RuntimeWarning, stacklevel=4)
    if s.config.lambda_1 > 0:
        terms["l1"] = l1_penalty(s.model)
        loss = loss + s.config.lambda_1 * terms["l1"]
    # Backward runs even on a non-finite loss: under DDP every rank must join the
    # gradient all-reduce, and the averaged gradient then tells all ranks to skip.
    s.scaler.scale(loss).backward()
    s.scaler.unscale_(s.optimizer)
    grads = [p.grad for p in s.model.parameters() if p.grad is not None]
    if _all_finite([loss, *grads, *(g for g in reg_grads if g is not None)]):
        s.scaler.step(s.optimizer)
        with torch.no_grad():
            lr = s.optimizer.param_groups[0]["lr"]
            for param, grad in zip(s.params, reg_grads):
                if grad is not None:
                    param.add_(grad, alpha=-lr * lambda_r)
        stats.add(terms | {"train_loss": loss + lambda_r * terms["reg"] if reg_grads else loss})
    else:
        stats.count("skipped_steps")
    s.scaler.update()


def _task_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy averaged over the *global* batch.

    DDP averages gradients over ranks, which equals the global mean only when every
    rank holds as many samples; so each rank sums its losses and divides by the
    global count over the world size (one tiny all-reduce). A single process takes
    the plain mean."""
    if not is_distributed():
        return F.cross_entropy(logits, targets).float()
    count = all_reduce_sum(torch.tensor(float(targets.numel()), device=logits.device))
    return F.cross_entropy(logits, targets, reduction="sum").float() * get_world_size() / count


def _run_epoch(s: _Session, train_loader: DataLoader, test_loader: DataLoader, epoch: int,
               show: bool) -> dict[str, Any]:
    """Train one epoch, evaluate, and return its metrics record."""
    started = time.perf_counter()
    config = s.config
    lr, lambda_r = config.lr_at(epoch), config.lambda_r_at(epoch)
    for group in s.optimizer.param_groups:
        group["lr"] = lr
    _set_epoch(train_loader, epoch)
    steps = min(len(train_loader), config.max_steps_per_epoch or len(train_loader))
    stats = _EpochStats(s.device)
    s.net.train()
    bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not show, dynamic_ncols=True)
    with bar:
        for step, (inputs, targets) in enumerate(islice(train_loader, steps), start=1):
            _train_step(s, inputs.to(s.device), targets.to(s.device), lambda_r, stats)
            bar.update()
            if step % config.log_every == 0:
                bar.set_postfix(loss=f"{stats.running_loss():.4f}")
        broadcast_buffers(s.model)
        test = evaluate(s.model, test_loader, s.device)
        bar.set_postfix(loss=f"{stats.running_loss():.4f}", test_acc=f"{test['accuracy']:.4f}")
    summary = stats.summary()
    record = {"epoch": epoch + 1, **{k: summary[k] for k in _EpochStats.MEANS},
              "test_accuracy": test["accuracy"], "test_loss": test["loss"], "lr": lr, "lambda_r": lambda_r,
              **{k: summary[k] for k in _EpochStats.COUNTS}, "seconds": time.perf_counter() - started}
    logger.debug("epoch %d/%d: %s", epoch + 1, config.epochs, record)
    return record


# --- checkpoints ------------------------------------------------------------------


def _rng_state(loader: DataLoader) -> dict[str, Any]:
    """Every RNG the loop draws from, in types ``torch.load(weights_only=True)`` accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, keys.tolist(), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": [g.get_state() for g in _loader_generators(loader)],
    }


def _set_rng_state(state: dict[str, Any], loader: DataLoader) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    for generator, saved in zip(_loader_generators(loader), state["loader"]):
        generator.set_state(saved)


def _save_checkpoint(path: Path, s: _Session, epochs_done: int, history: list[dict],
                     loader: DataLoader) -> None:
    atomic_torch_save({
        "model": s.model.state_dict(),
        "optimizer": s.optimizer.state_dict(),
        "scaler": s.scaler.state_dict(),
        "epoch": epochs_done,
        "history": history,
        "config": asdict(s.config),
        "run": dict(s.run),
        "rng": _rng_state(loader),
    }, path)


def _check_run(path: Path, now: dict[str, Any], saved: dict[str, Any]) -> None:
    """Refuse to resume a run of another model, dataset, input shape or mode (when
    both the checkpoint and the caller say what the run is)."""
    if not now or not saved:
        return
    differing = [f"{k}={saved.get(k)!r} (checkpoint) vs {now.get(k)!r}"
                 for k in sorted(now.keys() | saved.keys()) if saved.get(k) != now.get(k)]
    if differing:
        raise CheckpointError(f"cannot resume from {path}: it is another run: {bounded_list(differing)}")


def _check_config(path: Path, now: dict[str, Any], saved: dict[str, Any]) -> None:
    """Refuse to resume under a config that would change what the finished epochs meant."""
    differing = [f"{k}={saved.get(k)!r} (checkpoint) vs {now.get(k)!r}"
                 for k in sorted(now.keys() | saved.keys())
                 if k not in RESUMABLE_CHANGES and saved.get(k) != now.get(k)]
    if differing:
        raise CheckpointError(f"cannot resume from {path}: config differs: fields: {bounded_list(differing)}")


def _resume(path: Path, s: _Session, loader: DataLoader) -> tuple[int, list[dict[str, Any]]]:
    """Restore the last completed epoch from ``path``; return (epochs done, history)."""
    if not path.exists():
        logger.info("no checkpoint at %s: starting from scratch", path)
        return 0, []
    checkpoint = read_torch_file(path)
    needed = {"model", "optimizer", "scaler", "epoch", "history", "config", "rng"}
    if not isinstance(checkpoint, dict) or not needed <= checkpoint.keys():
        raise CheckpointError(f"{path} is not a netgraph training checkpoint")
    _check_run(path, dict(s.run), checkpoint.get("run", {}))
    check_state_matches(s.model.state_dict(), checkpoint["model"], f"checkpoint {path} does not match the model")
    _check_config(path, asdict(s.config), checkpoint["config"])
    if checkpoint["epoch"] > s.config.epochs:
        raise CheckpointError(
            f"{path} already holds {checkpoint['epoch']} epochs, more than epochs={s.config.epochs}: "
            f"nothing to resume; ask for epochs >= {checkpoint['epoch']} to continue it"
        )
    s.model.load_state_dict(checkpoint["model"])
    s.optimizer.load_state_dict(checkpoint["optimizer"])
    s.scaler.load_state_dict(checkpoint["scaler"])
    _set_rng_state(checkpoint["rng"], loader)
    return checkpoint["epoch"], checkpoint["history"]


# --- entry point ------------------------------------------------------------------


def train(
    model: nn.Module,
    train_loader: DataLoader,
    test_loader: DataLoader,
    config: TrainConfig,
    regularizer: Callable[[], Tensor] | None = None,
    out_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    run: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``(inputs, targets)`` batches with cross-entropy
    ``+ lambda_r(epoch) * regularizer() + lambda_1 * L1(prunable weights)``.

    Parameters
    ----------
    model : nn.Module
    train_loader, test_loader : DataLoader
        Batches of ``(inputs, targets)``; test accuracy is measured after each epoch.
    config : TrainConfig
    regularizer : callable, optional
        ``() -> scalar Tensor``, e.g. :class:`netgraph.CoNNect`; needed when ``lambda_r > 0``.
    out_dir : Path, optional
        Run directory for checkpoints, metrics and the final weights.
    resume : bool
        Continue from ``out_dir/checkpoint.pt``, exactly as if never interrupted.
    progress : bool
        Show a progress bar (rank 0).
    run : mapping, optional
        What is trained (JSON values), recorded in checkpoints.

    Returns
    -------
    TrainResult
        Final and best test accuracy, and the per-epoch history.

    ``regularizer`` is called once per step on the live weights of ``model`` (not a
    DDP wrapper) and returns a scalar that may be ``+inf``. With ``out_dir``, rank 0
    writes ``checkpoint.pt`` and ``metrics.jsonl`` after every epoch and ``model.pt``
    (the state_dict) at the end; ``resume=True`` continues from ``checkpoint.pt``
    (or starts afresh if there is none). ``run`` describes what is trained (model,
    dataset, input shape, mode: JSON values); checkpoints record it and resuming
    refuses a checkpoint of another run. Under ``torchrun`` the caller joins the
    process group first (:func:`setup_distributed`); the train loader should then
    be sharded (``make_loaders(..., distributed=True)``: the single-process batches,
    split across ranks, so the job takes the same steps as one process).

    Examples
    --------
    >>> import torch, netgraph as ng
    >>> from torch import nn
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(256, 4)
    >>> data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=32)
    >>> model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> config = ng.TrainConfig(epochs=3, lr=0.1, lambda_r=0.01)
    >>> result = ng.train(model, data, data, config, regularizer=ng.CoNNect(model, input_shape=(4,)), progress=False)
    >>> result.final_accuracy > 0.9
    True
    """
    if config.lambda_r > 0 and regularizer is None:
        raise NetgraphError("lambda_r > 0 needs a regularizer")
    if resume and out_dir is None:
        raise NetgraphError("resume needs an output directory")
    rank, world_size, device = get_rank(), get_world_size(), process_device(config.device)
    sharded = isinstance(train_loader.sampler, (DistributedSampler, ShardedBatchSampler)) or isinstance(
        train_loader.batch_sampler, ShardedBatchSampler)
    if world_size > 1 and not sharded:
        warnings.warn("distributed training with an unsharded loader: every rank sees the whole dataset",
                      RuntimeWarning, stacklevel=2)
    seed_everything(config.seed)
    model.to(device)
    amp = _use_amp(config.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    session = _Session(model, model, _make_optimizer(model, config), scaler, config, device, amp, regularizer,
                       dict(run or {}), [p for p in model.parameters() if p.requires_grad])
    if config.optimizer == "adam" and config.lambda_r > 0 and not config.decoupled_reg:
        warnings.warn("CoNNect coupled into Adam: Adam normalises its small, row-constant gradient into full-size "
                      "steps that inflate whole rows; decoupled_reg=True applies it outside Adam", UserWarning,
                      stacklevel=2)
    out = Path(out_dir) if out_dir is not None else None
    writer = out is not None and rank == 0
    with job_run_lock(out) if out is not None else contextlib.nullcontext():  # one job writes a run directory
        start, history = _resume(out / CHECKPOINT, session, train_loader) if resume else (0, [])
        session.net = wrap_ddp(model, device)
        for epoch in range(start, config.epochs):
            history.append(_run_epoch(session, train_loader, test_loader, epoch, show=progress and rank == 0))
            if writer:
                _save_checkpoint(out / CHECKPOINT, session, epoch + 1, history, train_loader)
                atomic_write_text(out / METRICS, "".join(json.dumps(record) + "\n" for record in history))
        if writer:
            atomic_torch_save(model.state_dict(), out / MODEL)
    barrier()  # files exist on return, whichever rank returns first
    if not history:
        accuracy = evaluate(model, test_loader, device)["accuracy"]
        return TrainResult(accuracy, accuracy, [])
    accuracies = [record["test_accuracy"] for record in history]
    return TrainResult(accuracies[-1], max(accuracies), history)
