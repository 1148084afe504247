"""Structural (channel) pruning through Torch-Pruning's DepGraph (Fang et al. 2023).

DepGraph finds the groups of coupled channels (a conv's outputs, the BN after it,
the next layer's inputs, every branch of a residual sum) and removes whole groups,
so the model really gets smaller. Importance is a name of :data:`IMPORTANCES`, any
``tp.importance.Importance`` or a callable ``group -> per-channel tensor``.
``"taylor"`` is LLM-Pruner's first order ``|w * dL/dw|`` summed over the group and
reads the gradients of one batch; ``"connect"`` is the path mass a channel carries
(:class:`~netgraph.pruning.importance.ConnectImportance`), data-free; ``"x+connect"``
multiplies the two after normalising each.

A pruned model is saved as a plain state dict of tensors whose shapes are the new
structure, plus the marker :data:`STRUCTURE_KEY`; :func:`resize_to_state` replays
that structure on a freshly built model of the original architecture, so reloading
needs neither pickled code nor Torch-Pruning.
"""

from __future__ import annotations

import copy
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import nn
from torch.nn.utils import prune
from tqdm import tqdm

from netgraph.errors import NetgraphError
from netgraph.modes import eval_mode
from netgraph.parameters import prunable_parameters
from netgraph.pruning.importance import ConnectImportance

ImportanceFn = Callable[[tp.Group], torch.Tensor]

_BASES: dict[str, Callable[[], tp.importance.Importance]] = {
    "magnitude": tp.importance.GroupMagnitudeImportance,  # group L2 norm
    "taylor": tp.importance.GroupTaylorImportance,
}
#: The importance names :func:`structural_prune` accepts.
IMPORTANCES = ("magnitude", "taylor", "connect", "magnitude+connect", "taylor+connect")
#: Marker entry of a structurally pruned state dict (its value is ``tensor(1)``).
STRUCTURE_KEY = "netgraph.structured_pruning"


def needs_data(importance: str | ImportanceFn) -> bool:
    """True for importances that read gradients of a batch (Taylor and its products)."""
    if isinstance(importance, str):
        return "taylor" in importance.split("+")
    base = getattr(importance, "base", importance)
    return isinstance(base, tp.importance.GroupTaylorImportance)


def make_importance(name: str, model: nn.Module, input_shape: Sequence[int]) -> ImportanceFn:
    """The Torch-Pruning importance called ``name`` (see :data:`IMPORTANCES`) for ``model``."""
    if name not in IMPORTANCES:
        raise NetgraphError(f"unknown importance {name!r}; choose one of {', '.join(IMPORTANCES)}")
    base_name, _, connect = name.partition("+")
    if base_name == "connect":
        return ConnectImportance(model, input_shape)
    base = _BASES[base_name]()
    return ConnectImportance(model, input_shape, base=base) if connect else base


@dataclass
class PruneOutcome:
    """What one structural pruning removed: channels per group (named by the group's
    root layer), the ratio used (the one found when a MAC target was given) and, when
    the requested ratio would have emptied a layer, the note saying it was clamped."""

    ratio: float
    removed: dict[str, int] = field(default_factory=dict)
    clamped: str | None = None


def structural_prune(
    model: nn.Module,
    example_input: torch.Tensor,
    ratio: float,
    importance: str | ImportanceFn = "magnitude",
    *,
    ignored_layers: Sequence[nn.Module] | None = None,
    batch: tuple[torch.Tensor, torch.Tensor] | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    global_pruning: bool = False,
    round_to: int | None = None,
) -> PruneOutcome:
    """Remove ``ratio`` of the channels of every prunable group, in place (DepGraph).

    Torch-Pruning groups coupled channels (a conv's outputs, its BatchNorm, the next
    layer's inputs, every branch of a residual sum) and removes whole groups, so the
    model really gets smaller.

    Parameters
    ----------
    model : nn.Module
        Pruned in place; each module keeps its own training flag.
    example_input : Tensor
        A batch for tracing.
    ratio : float
        The fraction of every layer's channels to remove, in [0, 1). With per-layer
        pruning, a ratio that would empty the narrowest group is clamped to the
        largest that does not, and the outcome says so.
    importance : str or callable
        ``magnitude``, ``taylor`` (reads gradients: needs ``batch``), ``connect``
        (data-free), ``magnitude+connect``, ``taylor+connect``, or any
        ``tp.importance.Importance`` / ``group -> scores`` callable.
    ignored_layers : sequence of nn.Module, optional
        Kept whole; default the last Linear or conv layer, so the output keeps its width.
    batch : (inputs, targets), optional
        Gradients of ``loss_fn`` on it are computed first for importances that read
        ``.grad``, and cleared afterwards.
    loss_fn : callable
        The loss for ``batch``.
    global_pruning : bool
        Rank channels across layers instead of per layer.
    round_to : int, optional
        Keep channel counts multiples of this.

    Returns
    -------
    PruneOutcome
        The ratio used, the channels removed per group (named by its root layer), a
        clamp note.

    Raises
    ------
    NetgraphError
        Model untouched: a ratio outside [0, 1), a Taylor importance without
        ``batch``, a masked model, or a parameter Torch-Pruning cannot group.

    Examples
    --------
    >>> import torch, netgraph as ng
    >>> model = ng.build_model("resnet20")
    >>> outcome = ng.structural_prune(model, torch.randn(1, 3, 32, 32), 0.5, "connect")
    >>> model.stem[0].out_channels, model(torch.randn(2, 3, 32, 32)).shape
    (8, torch.Size([2, 10]))
    """
    if not 0 <= ratio < 1:
        raise NetgraphError(f"channel pruning ratio must be in [0, 1), got {ratio:g}")
    if prune.is_pruned(model):
        raise NetgraphError("the model carries unstructured pruning masks; make them permanent first")
    scorer = make_importance(importance, model, example_input.shape[1:]) if isinstance(importance, str) else importance
    if needs_data(scorer) and batch is None:
        raise NetgraphError("taylor importance needs a batch to compute gradients on (give a dataset)")
    device = next(model.parameters()).device
    if ignored_layers is None:
        ignored_layers = [prunable_parameters(model)[-1][0]]
    names = {module: name for name, module in model.named_modules()}
    outcome = PruneOutcome(ratio)
    with eval_mode(model), warnings.catch_warnings():  # DepGraph's tracing sets eval mode and leaves it
        warnings.filterwarnings("ignore", "Unwrapped parameters", UserWarning)  # refused below, by name
        pruner = tp.pruner.BasePruner(  # ``MetaPruner`` is its deprecated alias
            model,
            example_input.to(device),
            importance=scorer,
            pruning_ratio=ratio,
            ignored_layers=list(ignored_layers),
            global_pruning=global_pruning,
            round_to=round_to,
        )
        _check_groupable(pruner.DG, model)
        if not global_pruning:
            widths = [_out_channels(pruner.DG, g[0].dep.target.module)
                      for g in pruner.DG.get_all_groups(ignored_layers=pruner.ignored_layers,
                                                         root_module_types=pruner.root_module_types)]
            narrowest = min(widths, default=0)
            if narrowest and narrowest * (1 - ratio) < 1:
                limit = 1 - 1 / narrowest - 1e-9
                outcome.clamped = (f"ratio {ratio:g} would remove every channel of a {narrowest}-channel layer; "
                                   f"clamped to {limit:.4f}")
                outcome.ratio = ratio = max(limit, 0.0)
                pruner.per_step_pruning_ratio = pruner.iterative_pruning_ratio_scheduler(ratio, pruner.iterative_steps)
        if batch is not None:
            inputs, targets = batch
            model.zero_grad(set_to_none=True)
            loss_fn(model(inputs.to(device)), targets.to(device)).backward()
        # Torch-Pruning scores every group before the first goes, then builds each pruning
        # group after the previous one is pruned (concat offsets move): iterate lazily.
        for group in pruner.step(interactive=True):
            dep, idxs = group[0]
            if len(idxs) >= _out_channels(pruner.DG, dep.target.module):
                continue  # a layer must keep a channel: never disconnect the net
            outcome.removed[names.get(dep.target.module, str(dep.target))] = len(idxs)
            group.prune()
    if batch is not None:
        model.zero_grad(set_to_none=True)
    return outcome


def _out_channels(graph: tp.DependencyGraph, module: nn.Module) -> int:
    channels = graph.get_out_channels(module)
    return int(channels) if channels is not None else 1 << 62


def _check_groupable(graph: tp.DependencyGraph, model: nn.Module) -> None:
    """Refuse a model whose parameters Torch-Pruning would prune by guessing a dimension."""
    if not graph.unwrapped_parameters:
        return
    name = graph._param_to_name.get(graph.unwrapped_parameters[0][0], "?")
    owner = name.rpartition(".")[0]
    module = f"{owner} ({type(model.get_submodule(owner)).__name__})" if owner else type(model).__name__
    raise NetgraphError(
        f"Torch-Pruning cannot group parameter '{name}' of module {module}: it lives outside any layer "
        "type Torch-Pruning knows, so which dimension holds channels is unknown; move it into a standard layer"
    )


def prune_to_macs(
    model: nn.Module,
    example_input: torch.Tensor,
    reduction: float,
    importance: str | Callable[[nn.Module], ImportanceFn] = "magnitude",
    *,
    steps: int = 12,
    progress: bool = False,
    **options: object,
) -> PruneOutcome:
    """Prune ``model`` in place to at most ``1/reduction`` of its MACs (Torch-Pruning's
    counter), with the smallest uniform channel ratio that gets there.

    The ratio is found by bisection on copies (``steps`` trials, each a full
    :func:`structural_prune`), so every importance reaches the same MAC budget.
    With per-layer (local) pruning every group loses the same number of channels
    whichever it picks, so the search runs with magnitude importance (cheap, no
    batch); with ``global_pruning`` it runs with ``importance`` itself.
    ``importance`` is a name or a factory ``model -> importance`` (an importance
    holds its model, so each copy needs its own). ``options`` go to
    :func:`structural_prune`.
    """
    if not reduction > 1:
        raise NetgraphError(f"MAC reduction must be > 1 (e.g. 2 for half the MACs), got {reduction:g}")
    search, search_options = importance, options
    if not options.get("global_pruning"):
        search, search_options = "magnitude", {k: v for k, v in options.items() if k != "batch"}
    target = count(model, example_input)[1] / reduction
    low, high = 0.0, 0.99
    twin = copy.deepcopy(model)
    widest = structural_prune(twin, example_input, high, _scorer(twin, search), **search_options)
    if count(twin, example_input)[1] > target:
        raise NetgraphError(
            f"a {reduction:g}x MAC reduction is out of reach: pruning every layer to its last channels "
            f"(ratio {widest.ratio:.3f}) leaves {count(twin, example_input)[1] / target / reduction:.3g} "
            "of the MACs; ask for a smaller reduction"
        )
    high = widest.ratio
    for _ in tqdm(range(steps), desc=f"searching the ratio for {reduction:g}x fewer MACs", leave=False,
                  disable=not progress):
        middle = (low + high) / 2
        if count(_trial(model, example_input, middle, search, search_options), example_input)[1] <= target:
            high = middle
        else:
            low = middle
    return structural_prune(model, example_input, high, _scorer(model, importance), **options)


def _scorer(model: nn.Module, importance: str | Callable[[nn.Module], ImportanceFn]) -> str | ImportanceFn:
    return importance if isinstance(importance, str) else importance(model)


def _trial(model, example, ratio, importance, options):  # type: ignore[no-untyped-def]
    twin = copy.deepcopy(model)
    structural_prune(twin, example, ratio, _scorer(twin, importance), **options)
    return twin


def count(model: nn.Module, example_input: torch.Tensor) -> tuple[int, int]:
    """``(parameters, MACs)`` of one forward on ``example_input`` (Torch-Pruning's counter)."""
    with eval_mode(model):
        macs, params = tp.utils.count_ops_and_params(model, example_input.to(next(model.parameters()).device))
    return int(params), int(macs)


def latency_ms(model: nn.Module, input_shape: Sequence[int], repeats: int = 30) -> float:
    """Median CPU wall time (ms) of one forward at batch 1, after warm-up runs."""
    cpu = copy.deepcopy(model).cpu().eval()
    x = torch.randn(1, *input_shape)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 5):
            start = time.perf_counter()
            cpu(x)
            if i >= 5:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def structured_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The pruned model's state dict plus :data:`STRUCTURE_KEY`: tensors only, loadable
    with ``weights_only=True``; the shapes carry the new structure."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state[STRUCTURE_KEY] = torch.tensor(1)
    return state


def resize_to_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Give ``model`` the layer widths of a structurally pruned ``state`` (in place)
    and return the state without its marker, ready for a strict load.

    Every parameter and buffer whose saved shape differs is replaced by an empty
    tensor of that shape, and the module's width attributes follow (conv and
    Linear channels, norm-layer features; a depthwise conv keeps ``groups`` equal
    to its channels). Only widths change: a key the model lacks is left for the
    strict load to report.
    """
    state = {k: v for k, v in state.items() if k != STRUCTURE_KEY}
    for key, saved in state.items():
        module_name, _, attr = key.rpartition(".")
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            continue
        current = getattr(module, attr, None)
        if not isinstance(current, torch.Tensor) or current.shape == saved.shape:
            continue
        replacement = torch.empty(saved.shape, dtype=current.dtype, device=current.device)
        if isinstance(current, nn.Parameter):
            setattr(module, attr, nn.Parameter(replacement, requires_grad=current.requires_grad))
        else:
            module._buffers[attr] = replacement
        if attr == "weight":
            _set_widths(module, saved.shape)
    return state


def _set_widths(module: nn.Module, shape: torch.Size) -> None:
    if isinstance(module, nn.modules.conv._ConvNd):
        depthwise = module.groups > 1 and module.groups == module.in_channels
        transposed = module.transposed
        out_dim, in_dim = (1, 0) if transposed else (0, 1)
        module.out_channels = shape[out_dim] * (module.groups if transposed else 1)
        in_channels = shape[in_dim] * (1 if transposed else module.groups)
        if depthwise:
            module.groups = module.out_channels
            in_channels = module.out_channels
        module.in_channels = in_channels
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = int(shape[0]), int(shape[1])
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        module.num_features = int(shape[0])
    elif isinstance(module, nn.GroupNorm):
        module.num_channels = int(shape[0])
    elif isinstance(module, nn.LayerNorm):
        module.normalized_shape = tuple(shape)


def connect_sparse_training(
    model: nn.Module,
    train_loader: torch.utils.data.DataLoader,
    test_loader: torch.utils.data.DataLoader,
    input_shape: Sequence[int],
    lambda_r: float,
    epochs: int,
    lr: float = 1e-3,
    device: str | None = None,
    seed: int = 0,
) -> float:
    """Train ``model`` with ``task + lambda_r * R`` for structured CoNNect ``R`` (slice L2
    norms, BatchNorm gates) before one-shot pruning, and return the final test accuracy.

    This is the role ``pruner.regularize()`` plays in Torch-Pruning's sparse
    training, as a hook of the training engine (which runs it under AMP on CUDA and
    drops a non-finite R). Concentrating path mass on few channels is meant to leave
    the channels pruning removes carrying little of it.
    """
    from netgraph.connect.regularizer import CoNNect
    from netgraph.training.engine import TrainConfig, train

    if epochs < 1 or not lambda_r > 0:
        raise NetgraphError(f"sparse training needs epochs >= 1 and lambda_r > 0, got {epochs} and {lambda_r:g}")
    regularizer = CoNNect(model, input_shape=input_shape, structured=True, gates=True)
    config = TrainConfig(epochs=epochs, optimizer="adam", lr=lr, weight_decay=0.0, lambda_r=lambda_r,
                         seed=seed, device=device)
    return train(model, train_loader, test_loader, config, regularizer=regularizer).final_accuracy
