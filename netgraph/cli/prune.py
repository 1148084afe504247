"""``netgraph prune``: prune any model, unstructured (masks) or structured (DepGraph).

Both modes write a run directory: ``model.pt`` (masks in ``torch.nn.utils.prune``
format, or the physically smaller model as a tensor-only state dict that
``netgraph analyze MODEL --checkpoint DIR/model.pt`` reloads), ``report.json``
and ``params.json``. Exit 3 when the result is disconnected, like ``analyze``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console

from netgraph.amounts import parse_compression, sparsity_to_compression
from netgraph.atomic import atomic_write_json
from netgraph.cli.analyze import compression_text, exit_for, status_markup
from netgraph.cli.app import app
from netgraph.cli.paths import run_directory
from netgraph.errors import NetgraphError

if TYPE_CHECKING:  # torch loads when the command runs, not when the CLI starts
    import torch
    from torch import nn

_METHODS_HELP = "random, magnitude, magnitude_layerwise, synflow, connect (data-free); snip, grasp (need --dataset)"
_IMPORTANCES_HELP = "magnitude, taylor, connect, magnitude+connect, taylor+connect"


def sparsity_compression(text: str) -> float:
    """``--sparsity`` in any spelling: ``0.99`` (a fraction) or ``99%`` -> 100x.

    A bare number >= 1 is refused naming both readings (99% sparsity or a 99x compression).
    """
    word = text.strip()
    if word.endswith("%"):
        return parse_compression(word)
    try:
        value = float(word)
    except ValueError:
        raise NetgraphError(f"--sparsity {text}: write a fraction like 0.99 or a percentage like 99%") from None
    if value >= 1:
        raise NetgraphError(
            f"--sparsity {text} is ambiguous: write --sparsity {value:g}% for a sparsity of {value:g}% "
            f"({sparsity_to_compression(value / 100) if value < 100 else math.inf:.4g}x) "
            f"or --compression {value:g} for a {value:g}x compression"
        )
    return sparsity_to_compression(value)


def _acc(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@app.command("prune")
def prune_command(
    model: Annotated[str, typer.Argument(help="Model name (lenet5, resnet20, torchvision name, package.module:factory); the checkpoint's architecture.")],
    checkpoint: Annotated[Optional[Path], typer.Option(help="Trained weights (.pt/.safetensors); default: random init (pruning at initialisation).")] = None,
    method: Annotated[str, typer.Option(help=f"Unstructured method: {_METHODS_HELP}.")] = "magnitude",
    compression: Annotated[Optional[str], typer.Option(help="Unstructured target: total/remaining weights, e.g. 100x, 100, 99%, 10^2.")] = None,
    sparsity: Annotated[Optional[str], typer.Option(help="Unstructured target as the fraction removed: 0.99 or 99%.")] = None,
    iterations: Annotated[Optional[int], typer.Option(help="Rounds on the exponential schedule (default: the method's).")] = None,
    scope: Annotated[Optional[str], typer.Option(help="global or layerwise (default: the method's).")] = None,
    structured: Annotated[bool, typer.Option("--structured", help="Remove whole channels with Torch-Pruning (DepGraph) instead of masking weights.")] = False,
    importance: Annotated[str, typer.Option(help=f"Structured: channel importance ({_IMPORTANCES_HELP}); taylor needs --dataset.")] = "magnitude",
    pruning_ratio: Annotated[Optional[float], typer.Option(help="Structured: fraction of every layer's channels to remove, in [0, 1).")] = None,
    target_macs: Annotated[Optional[str], typer.Option(help="Structured: MAC reduction to reach, e.g. 2x (half the MACs).")] = None,
    global_pruning: Annotated[bool, typer.Option(help="Structured: rank channels across layers instead of the same ratio per layer.")] = False,
    sparse_train_epochs: Annotated[int, typer.Option(help="Structured: epochs of CoNNect sparse training before pruning (needs --dataset, --lambda-r).")] = 0,
    lambda_r: Annotated[float, typer.Option(help="Weight of structured CoNNect R in the sparse-training phase.")] = 0.0,
    dataset: Annotated[Optional[str], typer.Option(help="Data for data-driven scores (snip, grasp, taylor), accuracies and fine-tuning; data-free methods need none.")] = None,
    finetune_epochs: Annotated[int, typer.Option(help="Epochs of fine-tuning after pruning (0: none; needs --dataset).")] = 0,
    lr: Annotated[float, typer.Option(help="Adam learning rate for sparse training and fine-tuning.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Batch size for scores, training and evaluation.")] = 128,
    input_shape: Annotated[Optional[str], typer.Option(help="Per-sample input shape, e.g. 3,224,224 (default: the dataset's, else the model's).")] = None,
    num_classes: Annotated[Optional[int], typer.Option(help="Output classes when building the model (default: the dataset's, else 10 / 1000 for torchvision).")] = None,
    out: Annotated[Path, typer.Option(help="Run directory: model.pt, report.json, params.json.")] = Path("netgraph-prune"),
    force: Annotated[bool, typer.Option(help="Replace a run already in --out (its model.pt, report.json, params.json...).")] = False,
    seed: Annotated[int, typer.Option(help="Seed for random init, random scores and data order.")] = 0,
    data_root: Annotated[Optional[Path], typer.Option(help="Directory holding torchvision datasets / ImageFolder.")] = None,
    device: Annotated[Optional[str], typer.Option(help="cuda, cuda:1, cpu (default: CUDA if available).")] = None,
    calibration_batches: Annotated[int, typer.Option(help="LLMs: batches of the Shakespeare training split for Taylor importance (LLM-Pruner's calibration).")] = 4,
) -> int:
    """Prune MODEL (a checkpoint or a fresh init), optionally fine-tune, and report connectivity.

    Exit code 0: connected; 3: the pruned model is disconnected; 2: bad input.
    """
    from netgraph.device import pick_device
    from netgraph.pruning import METHODS
    from netgraph.pruning.structured import IMPORTANCES, needs_data

    # --- every check before any work ---------------------------------------------
    if structured:
        unused = [flag for flag, given in (("--compression", compression), ("--sparsity", sparsity),
                                          ("--iterations", iterations), ("--scope", scope)) if given is not None]
        if method != "magnitude":
            unused.append("--method")
        if unused:
            raise NetgraphError(f"{', '.join(unused)} apply to unstructured pruning; with --structured use "
                                "--importance and --pruning-ratio or --target-macs")
        if importance not in IMPORTANCES:
            raise NetgraphError(f"--importance {importance}: choose one of {', '.join(IMPORTANCES)}")
        if (pruning_ratio is None) == (target_macs is None):
            raise NetgraphError("give exactly one of --pruning-ratio or --target-macs")
        if pruning_ratio is not None and not 0 <= pruning_ratio < 1:
            raise NetgraphError(f"--pruning-ratio must be in [0, 1), got {pruning_ratio:g}")
        reduction = parse_compression(target_macs) if target_macs is not None else None
        if reduction is not None and not reduction > 1:
            raise NetgraphError(f"--target-macs must be a reduction > 1 (e.g. 2x), got {target_macs}")
        if needs_data(importance) and dataset is None:
            raise NetgraphError(f"--importance {importance} reads gradients: give --dataset")
        if sparse_train_epochs and (dataset is None or not lambda_r > 0):
            raise NetgraphError("--sparse-train-epochs needs --dataset and --lambda-r > 0")
        if sparse_train_epochs < 0 or lambda_r < 0:
            raise NetgraphError("--sparse-train-epochs and --lambda-r must be >= 0")
        if lambda_r and not sparse_train_epochs:
            raise NetgraphError("--lambda-r weighs CoNNect in the sparse-training phase: give --sparse-train-epochs too")
        target = None
    else:
        if (pruning_ratio is not None or target_macs is not None or importance != "magnitude" or sparse_train_epochs
                or lambda_r or global_pruning):
            raise NetgraphError("--importance, --pruning-ratio, --target-macs, --global-pruning, --sparse-train-epochs "
                                "and --lambda-r need --structured")
        if method not in METHODS:
            raise NetgraphError(f"--method {method}: choose one of {', '.join(METHODS)}")
        if (compression is None) == (sparsity is None):
            raise NetgraphError("give exactly one of --compression or --sparsity")
        target = parse_compression(compression) if compression is not None else sparsity_compression(sparsity)
        if not METHODS[method].data_free and dataset is None:
            raise NetgraphError(f"--method {method} scores weights on data: give --dataset")
        reduction = None
    if finetune_epochs < 0:
        raise NetgraphError(f"--finetune-epochs must be >= 0, got {finetune_epochs}")
    if finetune_epochs and dataset is None:
        raise NetgraphError("--finetune-epochs needs --dataset")
    if not (math.isfinite(lr) and lr > 0):
        raise NetgraphError(f"--lr must be > 0, got {lr}")
    if batch_size < 1:
        raise NetgraphError(f"--batch-size must be >= 1, got {batch_size}")
    run_directory(out, force=force)
    torch_device = pick_device(device)
    from netgraph.cli.loading import parse_shape, per_sample, resolve_model

    shape = parse_shape(input_shape)

    # --- model and data ----------------------------------------------------------
    from netgraph.training.data import load_dataset, make_loaders
    from netgraph.training.engine import evaluate, seed_everything

    seed_everything(seed)
    loaders = None
    if calibration_batches < 0:
        raise NetgraphError(f"--calibration-batches must be >= 0, got {calibration_batches}")
    if dataset is not None and dataset != LM_CORPUS:
        splits = load_dataset(dataset, data_root=str(data_root) if data_root else None, seed=seed)
        if shape is not None:
            shape = per_sample(shape, len(splits.input_shape))
        if shape is not None and tuple(shape) != tuple(splits.input_shape):
            raise NetgraphError(f"--input-shape {input_shape} differs from {dataset}'s inputs "
                                f"{','.join(map(str, splits.input_shape))}; drop --input-shape")
        if num_classes is not None and num_classes != splits.num_classes:
            raise NetgraphError(f"--num-classes {num_classes} differs from {dataset}'s {splits.num_classes} classes")
        shape, num_classes = splits.input_shape, splits.num_classes
        loaders = make_loaders(splits, batch_size, seed=seed)
    net, shape = resolve_model(model, checkpoint, shape, num_classes, need_shape=False)
    if structured and _is_causal_lm(net):
        _prune_llm(net, model, checkpoint, shape, importance, pruning_ratio, target_macs, dataset,
                   calibration_batches, finetune_epochs, sparse_train_epochs, batch_size, seed, torch_device, out, force)
    if dataset == LM_CORPUS:
        raise NetgraphError(f"--dataset {LM_CORPUS} is the corpus of causal LMs (with --structured)")
    if shape is None:
        raise NetgraphError(f"no default input shape for '{model}': pass --input-shape (e.g. 3,224,224)")
    net.to(torch_device)
    classes = _output_width(net, shape, torch_device)

    def accuracy() -> float | None:
        return None if loaders is None else evaluate(net, loaders[1], torch_device)["accuracy"]

    report: dict[str, Any] = {"model": model, "checkpoint": str(checkpoint) if checkpoint else None,
                              "mode": "structured" if structured else "unstructured",
                              "accuracy_before": accuracy()}
    console = Console(stderr=False)
    if structured:
        report.update(_structured(net, shape, importance, pruning_ratio, reduction, global_pruning, loaders,
                                  sparse_train_epochs, lambda_r, lr, device, seed, torch_device, console))
    else:
        report.update(_unstructured(net, shape, method, target, iterations, scope, loaders, seed, console))
    report["accuracy_after_pruning"] = accuracy()
    if finetune_epochs:
        from netgraph.training.engine import TrainConfig, train

        config = TrainConfig(epochs=finetune_epochs, optimizer="adam", lr=lr, weight_decay=0.0, seed=seed,
                             device=device, batch_size=batch_size)
        train(net, loaders[0], loaders[1], config)
    report["accuracy_after_finetune"] = accuracy() if finetune_epochs else None

    # --- connectivity, files, summary ------------------------------------------------
    from netgraph.connectivity.report import analyze
    from netgraph.graph.tracer import trace
    from netgraph.pruning.structured import structured_state

    connectivity = analyze(trace(net, input_shape=shape))
    report["connectivity"] = connectivity.to_dict()
    params = {"command": "prune", "model": model, "checkpoint": report["checkpoint"], "input_shape": list(shape),
              "num_classes": classes, "mode": report["mode"], "seed": seed, "dataset": dataset,
              "finetune_epochs": finetune_epochs, "lr": lr, "batch_size": batch_size, "device": str(torch_device)}
    if structured:
        params.update(importance=importance, pruning_ratio=pruning_ratio, target_macs=reduction,
                      global_pruning=global_pruning, sparse_train_epochs=sparse_train_epochs, lambda_r=lambda_r)
    else:
        params.update(method=method, target_compression=target, iterations=iterations, scope=scope)
    _write_run(out, structured_state(net) if structured else net.state_dict(), report, params, force)

    status = status_markup(connectivity.disconnected)
    console.print(
        f"accuracy: before {_acc(report['accuracy_before'])}, after pruning {_acc(report['accuracy_after_pruning'])}, "
        f"after fine-tuning {_acc(report['accuracy_after_finetune'])}"
    )
    console.print(
        f"connectivity: {status}; nominal compression {compression_text(connectivity.nominal_compression)}, effective "
        f"{compression_text(connectivity.effective_compression)}, {connectivity.dead:,} dead weights; collapsed layers: "
        f"{', '.join(connectivity.collapsed_layers) or 'none'}"
    )
    console.print(f"wrote {out / 'model.pt'}, {out / 'report.json'}, {out / 'params.json'}")
    raise exit_for(connectivity.disconnected)


def _write_run(out: Path, state: dict, report: dict, params: dict, force: bool,
               extra: Callable[[], None] | None = None) -> None:
    """model.pt, report.json, params.json (and ``extra``'s files) into ``out``, holding
    its run lock and checking again, now that no other job can write it, that ``out``
    may be written."""
    from netgraph.training.checkpoint import save_checkpoint
    from netgraph.training.runlock import run_lock

    with run_lock(out):  # one job writes a run directory
        run_directory(out, force=force)
        save_checkpoint(state, out / "model.pt")
        if extra is not None:
            extra()
        atomic_write_json(out / "report.json", report)
        atomic_write_json(out / "params.json", params)


def _output_width(net: nn.Module, shape: tuple[int, ...], device: torch.device) -> int:
    import torch

    from netgraph.modes import eval_mode

    with torch.no_grad(), eval_mode(net):
        return int(net(torch.zeros(1, *shape, device=device)).shape[-1])


def _unstructured(net, shape, method, target, iterations, scope, loaders, seed, console) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from netgraph.pruning import METHODS, prunable_parameters
    from netgraph.pruning.masks import compression as achieved

    pruner = METHODS[method]
    batches = None if pruner.data_free else [batch for batch, _ in zip(loaders[0], range(4))]
    params = prunable_parameters(net)
    pruner.prune(net, params, compression=target, data=batches, input_shape=shape, iterations=iterations,
                 scope=scope, seed=seed, progress=True)
    reached = achieved(params)
    console.print(f"{method}: target compression {compression_text(target)}, reached {compression_text(reached)}")
    return {"method": method, "target_compression": target, "achieved_compression": reached}


def _structured(net, shape, importance, ratio, reduction, global_pruning, loaders, sparse_epochs, lambda_r,  # type: ignore[no-untyped-def]
                lr, device, seed, torch_device, console) -> dict[str, Any]:
    import torch

    from netgraph.pruning.structured import (
        connect_sparse_training,
        count,
        latency_ms,
        needs_data,
        prune_to_macs,
        structural_prune,
    )

    example = torch.zeros(1, *shape, device=torch_device)
    params_before, macs_before = count(net, example)
    latency_before = latency_ms(net, shape)
    result: dict[str, Any] = {"importance": importance, "pruning_ratio_requested": ratio, "target_macs": reduction}
    if sparse_epochs:
        result["accuracy_after_sparse_training"] = connect_sparse_training(
            net, loaders[0], loaders[1], shape, lambda_r, sparse_epochs, lr=lr, device=device, seed=seed)
    options: dict[str, Any] = {"global_pruning": global_pruning}
    if needs_data(importance):
        inputs, targets = next(iter(loaders[0]))
        options["batch"] = (inputs, targets)
    if reduction is not None:
        outcome = prune_to_macs(net, example, reduction, importance, progress=True, **options)
    else:
        outcome = structural_prune(net, example, ratio, importance, **options)
    if outcome.clamped:
        console.print(f"[yellow]note:[/] {outcome.clamped}")
    params_after, macs_after = count(net, example)
    result.update(
        pruning_ratio=outcome.ratio, clamped=outcome.clamped, channels_removed=outcome.removed,
        params_before=params_before, params_after=params_after, macs_before=macs_before, macs_after=macs_after,
        latency_ms_before=latency_before, latency_ms_after=latency_ms(net, shape),
    )
    console.print(
        f"{importance}: ratio {outcome.ratio:.3f}, {sum(outcome.removed.values()):,} channels removed in "
        f"{len(outcome.removed)} groups; params {params_before:,} -> {params_after:,}, MACs {macs_before:,} -> "
        f"{macs_after:,} ({macs_before / max(macs_after, 1):.2f}x); CPU latency {result['latency_ms_before']:.2f} -> "
        f"{result['latency_ms_after']:.2f} ms"
    )
    return result


_LLM_IMPORTANCES = {"taylor": "taylor", "connect": "connect", "taylor+connect": "taylor_connect"}


LM_CORPUS = "shakespeare"
LM_SEQ_LEN = 16


def _is_causal_lm(net: nn.Module) -> bool:
    """A Hugging Face LLaMA-style causal LM (``model.layers`` of decoder blocks), pruned by
    heads and MLP channels rather than by DepGraph groups."""
    return hasattr(getattr(net, "model", None), "layers") and hasattr(net, "config")


def _prune_llm(net, model, checkpoint, shape, importance, ratio, target_macs, dataset, calibration_batches,  # type: ignore[no-untyped-def]
               finetune_epochs, sparse_epochs, batch_size, seed, device, out, force) -> None:
    """LLM-Pruner-style structured pruning of a causal LM: whole attention heads (GQA-aware)
    and MLP channels, hidden size kept, first and last blocks dense; writes the run directory."""
    import itertools

    import torch

    from netgraph.atomic import atomic_write
    from netgraph.connectivity.report import analyze
    from netgraph.graph.tracer import trace
    from netgraph.pruning.llm import macs_per_token, prune_llama

    if importance not in _LLM_IMPORTANCES:
        raise NetgraphError(f"--importance {importance}: a causal LM is pruned by {', '.join(_LLM_IMPORTANCES)}")
    if ratio is None or target_macs is not None or finetune_epochs or sparse_epochs:
        raise NetgraphError("a causal LM takes --pruning-ratio (heads and MLP channels); --target-macs, "
                            "--finetune-epochs and --sparse-train-epochs are for vision models")
    if dataset not in (None, LM_CORPUS):
        raise NetgraphError(f"--dataset {dataset}: a causal LM reads the bundled corpus, --dataset {LM_CORPUS}")
    if importance != "connect" and dataset is None:
        raise NetgraphError(f"--importance {importance} reads gradients on calibration batches: give --dataset {LM_CORPUS}")
    if shape is not None and len(shape) != 1:
        raise NetgraphError(f"--input-shape of a causal LM is one sequence length, e.g. 16; got {shape}")
    seq_len = shape[0] if shape else LM_SEQ_LEN
    net.to(device)
    loaders = None
    if dataset is not None:
        from netgraph.training.text import CausalLM, perplexity, text_loaders

        loaders = text_loaders(seq_len=seq_len, batch_size=batch_size, eval_windows=64, seed=seed)
    calibration = [ids.to(device) for ids, _ in itertools.islice(loaders.train, calibration_batches)] if loaders else []
    report: dict[str, Any] = {"model": model, "checkpoint": str(checkpoint) if checkpoint else None,
                              "mode": "structured-llm", "importance": importance, "pruning_ratio": ratio,
                              "macs_per_token_before": macs_per_token(net, seq_len),
                              "perplexity_before": perplexity(CausalLM(net), loaders.validation) if loaders else None}
    outcome = prune_llama(net, ratio, importance=_LLM_IMPORTANCES[importance], calibration=calibration, seq_len=seq_len)
    report.update(heads_before=outcome.heads_before, heads_after=outcome.heads_after,
                  channels_before=outcome.channels_before, channels_after=outcome.channels_after,
                  params_before=outcome.params_before, params_after=outcome.params_after,
                  pruned_layers=outcome.pruned_layers, macs_per_token_after=macs_per_token(net, seq_len),
                  perplexity_after_pruning=perplexity(CausalLM(net), loaders.validation) if loaders else None)
    connectivity = analyze(trace(net, input_shape=(seq_len,), input_dtype=torch.long))
    report["connectivity"] = connectivity.to_dict()
    params = {"command": "prune", "model": model, "input_shape": [seq_len], "num_classes": net.config.vocab_size,
              "mode": "structured-llm", "importance": importance, "pruning_ratio": ratio, "seed": seed,
              "dataset": dataset, "calibration_batches": calibration_batches}
    _write_run(out, net.state_dict(), report, params, force,  # config.json: for llama_from_config
               extra=lambda: atomic_write(out / "config.json", lambda tmp: net.config.to_json_file(str(tmp))))
    console = Console()
    console.print(f"{importance}: heads {outcome.heads_before} -> {outcome.heads_after}, MLP channels "
                  f"{outcome.channels_before} -> {outcome.channels_after}, params {outcome.params_before:,} -> "
                  f"{outcome.params_after:,} (layers {outcome.pruned_layers})")
    if loaders:
        console.print(f"validation perplexity: before {report['perplexity_before']:.3f}, after pruning "
                      f"{report['perplexity_after_pruning']:.3f}")
    status = status_markup(connectivity.disconnected)
    console.print(f"connectivity: {status}; wrote {out / 'model.pt'}, config.json, report.json, params.json")
    raise exit_for(connectivity.disconnected)
