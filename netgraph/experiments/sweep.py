"""One pruning run of a comparison sweep: configuration, the grid, and the run itself.

A sweep crosses methods x compression levels x seeds in two protocols:

- ``init``: prune the freshly initialised network with the method (data-free
  methods see no data; SNIP and GraSP a few training batches), then train the
  sparse network for ``epochs``;
- ``post``: train the dense network for ``epochs`` (once per seed and per
  regularizer variant, cached), prune it with the method, then fine-tune for
  ``finetune_epochs``, the same for every method. Besides every score method
  applied to the plainly trained net, ``magnitude+l1`` prunes by magnitude after
  L1-regularised (``lambda_1``) dense training and ``magnitude+l1+connect`` after
  dense training with the same L1 plus CoNNect (``lambda_r``, applied as a
  decoupled step, outside Adam's normalisation), and ``imp`` is iterative magnitude pruning with
  rewinding to initialisation (``imp_rounds`` rounds; round 1 prunes the cached
  dense net, each later round retrains the rewound subnetwork for ``epochs``,
  and the final ticket is trained for ``epochs`` too, since rewound weights are
  untrained: its ``accuracy_before_finetune`` is that of the rewound ticket).

Compression is ``total / remaining`` prunable weights (Linear and conv weights).
Every measurement is taken after the final training, with the masks fixed, so
it describes the pruned structure that was evaluated. FLOPs are the
multiply-accumulates of the sparse network for one input: per Linear/conv
layer, its nonzero weights times the output positions the layer produces (the
spatial size of a conv's output; 1 for a Linear on a flat input, the product of
the leading non-batch dimensions otherwise; the input positions for a
transposed conv), counted with forward hooks on one example. Biases,
normalisation, activations and pooling are not counted.
"""

from __future__ import annotations

import copy
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from netgraph.amounts import parse_levels
from netgraph.atomic import atomic_torch_save, atomic_write_json, atomic_write_text
from netgraph.connectivity.report import ConnectivityReport, analyze
from netgraph.device import pick_device
from netgraph.errors import NetgraphError
from netgraph.experiments.store import finished, resume, write_record
from netgraph.graph.tracer import trace
from netgraph.pruning import (
    METHODS,
    iterative_magnitude,
    make_permanent,
    prunable_parameters,
    total_weights,
)
from netgraph.pruning.schedule import target_keep
from netgraph.training.data import DATASETS, DataSplits, load_dataset, make_loaders
from netgraph.training.engine import TrainConfig, evaluate, seed_everything, train
from netgraph.training.models import build_model, default_input_shape

__all__ = [
    "DEFAULT_EXPONENTS",
    "POST_ONLY",
    "PROTOCOLS",
    "RESULT_KEYS",
    "RunSpec",
    "SweepConfig",
    "SweepContext",
    "count_flops",
    "level_label",
    "parse_levels",
    "plan",
    "run_dense",
    "run_one",
    "score_methods",
]

PROTOCOLS = ("init", "post")
#: Methods that only make sense after dense training, and the dense variant each prunes.
POST_ONLY = ("magnitude+l1", "magnitude+l1+connect", "imp")
_VARIANT = {"magnitude+l1": "l1", "magnitude+l1+connect": "l1+connect"}
DENSE_VARIANTS = ("plain", "l1", "l1+connect")
DEFAULT_EXPONENTS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)
IMP_REWIND = "init"

#: The keys of every results row, in order (``layers`` is in the JSON table only).
RESULT_KEYS = (
    "method",
    "protocol",
    "target_compression",
    "nominal_compression",
    "effective_compression",
    "seed",
    "accuracy_before_finetune",
    "accuracy_after_finetune",
    "dense_accuracy",
    "log_phi",
    "dead",
    "disconnected",
    "collapsed_layers",
    "cut_layers",
    "parameters",
    "flops",
    "layers",
)
METRICS, PARAMS, LOG, MODEL = "metrics.json", "params.json", "log.txt", "model.pt"


def score_methods() -> list[str]:
    """Every registered pruning score (``netgraph.pruning.METHODS``), in registry order."""
    return list(METHODS)


def all_methods() -> list[str]:
    return score_methods() + list(POST_ONLY)


def protocols_of(method: str) -> tuple[str, ...]:
    return ("post",) if method in POST_ONLY else PROTOCOLS


# --- levels -------------------------------------------------------------------------


def level_label(compression: float) -> str:
    """``31.62``, ``100``, ``3162``: 4 significant digits, as run directories name levels."""
    return f"{compression:.4g}"


def exponent_of(compression: float) -> float:
    return round(math.log10(compression), 6)


# --- configuration -----------------------------------------------------------------


@dataclass
class SweepConfig:
    """Everything that defines a sweep (``OUT/sweep.json`` records it).

    ``methods`` None means all: every score method in both protocols plus
    ``magnitude+l1``, ``magnitude+l1+connect`` and ``imp`` in ``post``. ``levels``
    are compressions (:func:`netgraph.amounts.parse_levels` reads every spelling). ``iterations`` is the
    number of rounds of the iterated scores (SynFlow, CoNNect; the papers use
    100); ``score_batches`` the training batches SNIP and GraSP score with.
    ``device`` and ``data_root`` do not change what a run computes and are not
    part of the sweep's identity.

    The defaults are the quick LeNet-300-100 / mnist5k job: Adam at lr 1e-2
    (at 1e-3, nets pruned at init beyond ~30x stay at chance within 3 epochs),
    ``lambda_1`` 5e-4 (the largest of 2e-4-1e-3 whose dense accuracy stays within
    ~0.5 point of plain training) and ``lambda_r`` 30, chosen on a validation split
    carved from the training data under this budget (``analysis/regularizer_study.py
    mainjob``: L1 plus decoupled CoNNect at 3-1000; coupled into Adam, CoNNect
    collapses magnitude pruning).
    """

    model: str = "lenet300"
    dataset: str = "mnist5k"
    methods: list[str] | None = None
    protocols: list[str] = field(default_factory=lambda: list(PROTOCOLS))
    levels: list[float] = field(default_factory=lambda: [10**x for x in DEFAULT_EXPONENTS])
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int = 3
    finetune_epochs: int = 1
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-2
    weight_decay: float = 0.0
    lambda_r: float = 30.0
    lambda_1: float = 5e-4
    iterations: int = 100
    imp_rounds: int = 3
    score_batches: int = 2
    data_root: str | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        self.protocols = _unique([str(p).strip() for p in self.protocols if str(p).strip()])
        if not self.protocols:
            raise NetgraphError(f"no protocols given: choose from {', '.join(PROTOCOLS)}")
        bad = [p for p in self.protocols if p not in PROTOCOLS]
        if bad:
            raise NetgraphError(f"unknown protocol {bad[0]!r}: choose from {', '.join(PROTOCOLS)}")
        self.protocols = [p for p in PROTOCOLS if p in self.protocols]
        valid = all_methods()
        if self.methods is None:
            methods = [m for m in valid if set(protocols_of(m)) & set(self.protocols)]
        else:
            methods = _unique([str(m).strip() for m in self.methods if str(m).strip()])
            if not methods:
                raise NetgraphError(f"the method list is empty: choose from {', '.join(valid)}")
            unknown = [m for m in methods if m not in valid]
            if unknown:
                raise NetgraphError(f"unknown method {unknown[0]!r}: choose from {', '.join(valid)}")
            idle = [m for m in methods if not set(protocols_of(m)) & set(self.protocols)]
            if idle:
                raise NetgraphError(
                    f"method {idle[0]} runs only in the {'/'.join(protocols_of(idle[0]))} protocol, "
                    f"which is not among protocols= {','.join(self.protocols)}"
                )
        self.methods = sorted(methods, key=valid.index)  # one order: the same sweep whatever the listing
        self.levels = parse_levels(self.levels)
        self.seeds = _unique([int(s) for s in self.seeds])
        if not self.seeds:
            raise NetgraphError("no seeds given")
        if min(self.seeds) < 0:
            raise NetgraphError(f"seeds must be >= 0, got {min(self.seeds)}")
        if self.dataset not in DATASETS:
            raise NetgraphError(f"unknown dataset '{self.dataset}': choose one of {', '.join(DATASETS)}")
        default_input_shape(self.model)  # unknown model: NetgraphError listing the valid ones
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.finetune_epochs >= 0, f"finetune epochs must be >= 0, got {self.finetune_epochs}"),
            (self.iterations >= 1, f"iterations must be >= 1, got {self.iterations}"),
            (self.imp_rounds >= 1, f"imp rounds must be >= 1, got {self.imp_rounds}"),
            (self.score_batches >= 1, f"score batches must be >= 1, got {self.score_batches}"),
            (math.isfinite(self.lambda_r) and self.lambda_r > 0 or "magnitude+l1+connect" not in self.methods,
             f"lambda_r must be > 0 for magnitude+l1+connect, got {self.lambda_r}"),
            (math.isfinite(self.lambda_1) and self.lambda_1 > 0 or not {"magnitude+l1", "magnitude+l1+connect"} & set(self.methods),
             f"lambda_1 must be > 0 for magnitude+l1 and magnitude+l1+connect, got {self.lambda_1}"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:
            raise NetgraphError("; ".join(problems))
        self._train_config(1, 0)  # batch size, optimizer, lr: TrainConfig's own checks

    def methods_in(self, protocol: str) -> list[str]:
        return [m for m in self.methods if protocol in protocols_of(m)]

    def identity(self) -> dict[str, Any]:
        """What ``OUT/sweep.json`` compares: the fields that change what runs compute."""
        return {
            "model": self.model,
            "dataset": self.dataset,
            "protocols": list(self.protocols),
            "methods": {p: self.methods_in(p) for p in self.protocols},
            "levels": {"compressions": [float(c) for c in self.levels],
                       "exponents": [exponent_of(c) for c in self.levels]},
            "seeds": list(self.seeds),
            "budget": {
                "epochs": self.epochs,
                "finetune_epochs": self.finetune_epochs,
                "batch_size": self.batch_size,
                "optimizer": self.optimizer,
                "lr": self.lr,
                "weight_decay": self.weight_decay,
                "schedule": "cosine",
                "iterations": self.iterations,
                "imp_rounds": self.imp_rounds,
                "imp_rewind": IMP_REWIND,
                "score_batches": self.score_batches,
            },
            "regularizers": {"lambda_r": self.lambda_r, "lambda_1": self.lambda_1, "connect_step": "decoupled"},
        }

    def _train_config(self, epochs: int, seed: int, lambda_r: float = 0.0, lambda_1: float = 0.0) -> TrainConfig:
        # CoNNect as a decoupled step: coupled into Adam it inflates whole rows (DESIGN section 3)
        return TrainConfig(
            epochs=epochs, batch_size=self.batch_size, optimizer=self.optimizer, lr=self.lr,
            weight_decay=self.weight_decay, schedule="cosine", lambda_r=lambda_r, lambda_1=lambda_1,
            seed=seed, device=self.device, decoupled_reg=lambda_r > 0,
        )


def _unique(items: list) -> list:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid."""

    protocol: str
    method: str
    compression: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.protocol}-{self.method}-c{level_label(self.compression)}-s{self.seed}"

    @property
    def iterated(self) -> bool:
        """Whether its pruning score is iterated (SynFlow, CoNNect: ``SweepConfig.iterations`` rounds)."""
        score = self.method.split("+")[0]
        return score in METHODS and METHODS[score].default_iterations > 1

    @property
    def variant(self) -> str:
        """The dense run this run needs: its pruning source in ``post``, else the
        plain run that gives ``dense_accuracy``."""
        return _VARIANT.get(self.method, "plain") if self.protocol == "post" else "plain"


def plan(config: SweepConfig) -> list[RunSpec]:
    """Every run of the sweep, seed by seed, then protocol, method and level."""
    return [
        RunSpec(protocol, method, level, seed)
        for seed in config.seeds
        for protocol in config.protocols
        for method in config.methods_in(protocol)
        for level in config.levels
    ]


# --- shared state of one sweep --------------------------------------------------------


@dataclass
class DenseRun:
    state: dict[str, torch.Tensor]
    accuracy: float


class SweepContext:
    """Data, device and the caches a sweep's runs share (initial weights, dense runs)."""

    def __init__(self, config: SweepConfig, out: Path) -> None:
        self.config = config
        self.out = out
        self.device = pick_device(config.device)
        # The data split is fixed (seed 0): seeds vary initialisation and batch order only.
        self.splits: DataSplits = load_dataset(config.dataset, data_root=config.data_root)
        self.input_shape = tuple(self.splits.input_shape)
        self._init: dict[int, dict[str, torch.Tensor]] = {}
        self._dense: dict[tuple[str, int], DenseRun] = {}
        model = self.fresh_model(config.seeds[0])
        self.total_weights = total_weights(prunable_parameters(model))
        for level in config.levels:
            try:
                target_keep(self.total_weights, compression=level)
            except NetgraphError:
                raise NetgraphError(
                    f"compression {level_label(level)} leaves no weight of the {self.total_weights} prunable "
                    f"weights of {config.model}: use lower levels"
                ) from None

    def fresh_model(self, seed: int) -> nn.Module:
        """The model at its seed-``seed`` initialisation, on the sweep's device."""
        if seed not in self._init:
            seed_everything(seed)
            model = self._build()
            self._init[seed] = copy.deepcopy(model.state_dict())
        model = self._build()
        model.load_state_dict(self._init[seed])
        return model.to(self.device)

    def init_state(self, seed: int) -> dict[str, torch.Tensor]:
        self.fresh_model(seed)
        return self._init[seed]

    def _build(self) -> nn.Module:
        try:
            return build_model(self.config.model, self.splits.num_classes, self.input_shape)
        except RuntimeError as error:
            raise NetgraphError(f"cannot build {self.config.model} for {self.config.dataset}: {error}") from None

    def loaders(self, seed: int) -> tuple[DataLoader, DataLoader]:
        """Fresh train and test loaders, the train order a function of ``seed`` only,
        so a run never depends on the runs before it."""
        return make_loaders(self.splits, self.config.batch_size, seed=seed)

    def score_data(self, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``score_batches`` training batches of seed ``seed``'s order."""
        loader, _ = self.loaders(seed)
        batches = []
        for inputs, targets in loader:
            batches.append((inputs.to(self.device), targets.to(self.device)))
            if len(batches) == self.config.score_batches:
                break
        return batches

    def train(self, model: nn.Module, epochs: int, seed: int, regularizer=None,
              lambda_r: float = 0.0, lambda_1: float = 0.0):
        train_loader, test_loader = self.loaders(seed)
        config = self.config._train_config(epochs, seed, lambda_r, lambda_1)
        return train(model, train_loader, test_loader, config, regularizer=regularizer, progress=False)

    def accuracy(self, model: nn.Module) -> float:
        _, test_loader = self.loaders(0)
        return evaluate(model, test_loader, self.device)["accuracy"]

    def dense(self, variant: str, seed: int) -> DenseRun:
        key = (variant, seed)
        if key not in self._dense:
            self._dense[key] = run_dense(self, variant, seed)
        return self._dense[key]

    def dense_dir(self, variant: str, seed: int) -> Path:
        return self.out / "dense" / f"{variant}-s{seed}"

    def dense_done(self, variant: str, seed: int) -> bool:
        folder = self.dense_dir(variant, seed)
        return finished(folder / METRICS, folder / MODEL)


class RunLog:
    """Lines of a run's ``log.txt``, stamped with seconds since the run started."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.lines: list[str] = []

    def __call__(self, message: str) -> None:
        self.lines.append(f"[{time.perf_counter() - self.started:7.2f}s] {message}")

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _history_lines(log: RunLog, label: str, result) -> None:
    for record in result.history:
        extras = "".join(f", {k} {record[k]:.4f}" for k in ("reg", "l1") if record.get(k) is not None)
        log(f"{label} epoch {record['epoch']}: loss {record['train_loss']:.4f}{extras}, "
            f"test accuracy {record['test_accuracy']:.4f} ({record['seconds']:.2f}s)")


# --- dense runs -----------------------------------------------------------------------


def run_dense(ctx: SweepContext, variant: str, seed: int) -> DenseRun:
    """Train (or read back) the dense network of ``variant`` for ``seed``:
    ``OUT/dense/<variant>-s<seed>/`` holds ``model.pt``, ``log.txt`` and, written
    last, ``metrics.json``."""
    if variant not in DENSE_VARIANTS:
        raise NetgraphError(f"unknown dense variant {variant!r}")
    folder = ctx.dense_dir(variant, seed)
    config = ctx.config

    def compute() -> dict[str, Any]:
        log = RunLog()
        lambda_r = config.lambda_r if variant == "l1+connect" else 0.0
        lambda_1 = config.lambda_1 if variant in ("l1", "l1+connect") else 0.0
        params = {"variant": variant, "seed": seed, "epochs": config.epochs, "lambda_r": lambda_r, "lambda_1": lambda_1}
        atomic_write_json(folder / PARAMS, params)
        model = ctx.fresh_model(seed)
        regularizer = None
        if lambda_r > 0:
            from netgraph.connect.regularizer import CoNNect

            regularizer = CoNNect(model, input_shape=ctx.input_shape)
        log(f"dense {variant} training of {config.model} on {config.dataset}, seed {seed}, "
            f"{config.epochs} epochs, lambda_r {lambda_r}, lambda_1 {lambda_1}")
        result = ctx.train(model, config.epochs, seed, regularizer, lambda_r, lambda_1)
        _history_lines(log, "dense", result)
        atomic_torch_save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, folder / MODEL)
        log(f"done: accuracy {result.final_accuracy:.4f}")
        atomic_write_text(folder / LOG, log.text())
        return {**params, "accuracy": result.final_accuracy, "history": result.history, "seconds": log.seconds}

    metrics = resume(folder / METRICS, compute, companions=[folder / MODEL])
    state = torch.load(folder / MODEL, map_location="cpu", weights_only=True)
    return DenseRun(state, float(metrics["accuracy"]))


# --- one run --------------------------------------------------------------------------


def run_params(ctx: SweepContext, spec: RunSpec) -> dict[str, Any]:
    config = ctx.config
    return {
        "name": spec.name,
        "protocol": spec.protocol,
        "method": spec.method,
        "target_compression": spec.compression,
        "target_exponent": exponent_of(spec.compression),
        "seed": spec.seed,
        "dense_variant": spec.variant,
        "model": config.model,
        "dataset": config.dataset,
        "input_shape": list(ctx.input_shape),
        "sweep": config.identity(),
        "device": str(ctx.device),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _prune_with(ctx: SweepContext, model: nn.Module, method: str, compression: float, seed: int,
                rounds: int) -> None:
    """Score-and-mask ``model`` to ``compression`` with registered method ``method`` in ``rounds`` rounds."""
    chosen = METHODS[method]
    seed_everything(seed)
    chosen.prune(
        model,
        prunable_parameters(model),
        compression=compression,
        data=None if chosen.data_free else ctx.score_data(seed),
        input_shape=ctx.input_shape,
        iterations=rounds,
        seed=seed,
    )


def run_one(ctx: SweepContext, spec: RunSpec, run_dir: Path, save_model: bool = False) -> dict[str, Any]:
    """Run ``spec`` into ``run_dir``: ``params.json`` first, then ``log.txt``,
    ``model.pt`` (if asked) and, last, ``metrics.json``, each written atomically,
    so a run directory with ``metrics.json`` is a finished run. Returns the metrics."""
    config = ctx.config
    log = RunLog()
    atomic_write_json(run_dir / PARAMS, run_params(ctx, spec))
    dense = ctx.dense(spec.variant, spec.seed)
    model = ctx.fresh_model(spec.seed)
    if spec.protocol == "init":
        before, result = _prune_and_train(
            ctx, model, spec, spec.method, f"pruned the initialised {config.model}", config.epochs, "train", log
        )
    else:
        model.load_state_dict(dense.state)
        log(f"loaded the dense {spec.variant} run of seed {spec.seed} (accuracy {dense.accuracy:.4f})")
        if spec.method == "imp":
            before, result = _imp(ctx, model, spec, log)
        else:
            before, result = _prune_and_train(
                ctx, model, spec, spec.method.split("+")[0], "pruned", config.finetune_epochs, "fine-tune", log
            )
    after = result.final_accuracy
    log(f"accuracy after training: {after:.4f}")
    make_permanent(model)  # masks are fixed from here on: measure the structure that was evaluated
    model.eval()
    started = time.perf_counter()
    report = analyze(trace(model, input_shape=ctx.input_shape))
    flops = count_flops(model, ctx.input_shape)
    row = result_row(spec, report, flops, before, after, dense.accuracy)
    log(f"analysis in {time.perf_counter() - started:.2f}s: nominal {report.nominal_compression:.4g}x, "
        f"effective {report.effective_compression:.4g}x, log phi {report.log_phi:.4g}, dead {report.dead}, "
        f"disconnected {report.disconnected}, collapsed {report.collapsed_layers or '-'}, "
        f"cut {report.cut_layers or '-'}, flops {flops}")
    if save_model:
        atomic_torch_save({k: v.detach().cpu() for k, v in model.state_dict().items()}, run_dir / MODEL)
    log(f"finished in {log.seconds:.2f}s")
    atomic_write_text(run_dir / LOG, log.text())
    metrics = {**row, "name": spec.name, "seconds": log.seconds, "history": result.history,
               "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_record(run_dir / METRICS, metrics)
    return metrics


_STAGE_NAMES = {"train": "training", "fine-tune": "fine-tuning"}


def _prune_and_train(
    ctx: SweepContext, model: nn.Module, spec: RunSpec, method: str, pruned: str, epochs: int, stage: str, log: RunLog
):
    """Prune with ``method``, then train ``epochs`` (``stage``: train or fine-tune),
    logging both; the accuracy in between and the training result."""
    rounds = ctx.config.iterations if spec.iterated else 1
    started = time.perf_counter()
    _prune_with(ctx, model, method, spec.compression, spec.seed, rounds)
    log(f"{pruned} with {method} ({rounds} round(s)) to {level_label(spec.compression)}x "
        f"in {time.perf_counter() - started:.2f}s")
    before = ctx.accuracy(model)
    log(f"accuracy before {_STAGE_NAMES[stage]}: {before:.4f}")
    result = ctx.train(model, epochs, spec.seed)
    _history_lines(log, stage, result)
    return before, result


def _imp(ctx: SweepContext, model: nn.Module, spec: RunSpec, log: RunLog):
    """Iterative magnitude pruning, rewinding to initialisation after every round."""
    config = ctx.config
    calls = 0

    def train_round(net: nn.Module) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            return  # round 1 prunes the dense network trained once per seed (the cached plain run)
        result = ctx.train(net, config.epochs, spec.seed)
        _history_lines(log, f"imp round {calls}", result)

    iterative_magnitude(model, prunable_parameters(model), train_round, rounds=config.imp_rounds,
                        compression=spec.compression, rewind_state=ctx.init_state(spec.seed))
    log(f"imp: {config.imp_rounds} round(s) to {level_label(spec.compression)}x, rewound to initialisation")
    before = ctx.accuracy(model)
    log(f"accuracy of the rewound ticket: {before:.4f}")
    result = ctx.train(model, config.epochs, spec.seed)
    _history_lines(log, "ticket", result)
    return before, result


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def result_row(spec: RunSpec, report: ConnectivityReport, flops: int, before: float, after: float,
               dense_accuracy: float) -> dict[str, Any]:
    """The results-table row of one run (keys :data:`RESULT_KEYS`, in order).
    Non-finite numbers (``log_phi`` of a disconnected net, the effective
    compression of a net with no alive weight) are ``None``."""
    row = {
        "method": spec.method,
        "protocol": spec.protocol,
        "target_compression": float(spec.compression),
        "nominal_compression": _finite(report.nominal_compression),
        "effective_compression": _finite(report.effective_compression),
        "seed": spec.seed,
        "accuracy_before_finetune": float(before),
        "accuracy_after_finetune": float(after),
        "dense_accuracy": float(dense_accuracy),
        "log_phi": None if report.disconnected else _finite(report.log_phi),
        "dead": int(report.dead),
        "disconnected": bool(report.disconnected),
        "collapsed_layers": list(report.collapsed_layers),
        "cut_layers": list(report.cut_layers),
        "parameters": int(report.nonzero),
        "flops": int(flops),
        "layers": {
            layer.name: {"density": layer.nonzero / max(layer.parameters, 1),
                         "alive_density": layer.alive / max(layer.parameters, 1)}
            for layer in report.layers
        },
    }
    assert tuple(row) == RESULT_KEYS
    return row


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of the (sparse) model for one input: per Linear/conv
    layer, nonzero weights x output positions (input positions for a transposed
    conv), found by one forward pass of a zero input with forward hooks."""
    counts: list[int] = []

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        weight = module.weight
        nonzero = int(torch.count_nonzero(weight.detach()))
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            positions = math.prod(inputs[0].shape[2:])
        elif isinstance(module, nn.modules.conv._ConvNd):
            positions = math.prod(output.shape[2:])
        else:  # Linear: everything but the batch and feature dimensions
            positions = output.numel() // (output.shape[0] * output.shape[-1])
        counts.append(nonzero * positions)

    modules = {id(m): m for m, _ in prunable_parameters(model)}
    handles = [m.register_forward_hook(hook) for m in modules.values()]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return sum(counts)

