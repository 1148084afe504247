"""``netgraph plot``: the surviving paths and per-layer alive weights of one checkpoint
(and, for an MLP on images, which input pixels still reach an output)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from netgraph.cli.app import app
from netgraph.errors import NetgraphError

PARAMS = "params.json"


def read_params(checkpoint: Path) -> dict[str, Any]:
    """The ``params.json`` beside ``checkpoint`` (written by train, prune and
    compare): ``model`` (str) is required, ``input_shape`` (list of positive
    ints, per sample) and ``num_classes`` (int) are used when present. Raises
    NetgraphError naming the file when it is missing or does not hold these."""
    path = checkpoint.parent / PARAMS
    if not path.is_file():
        raise NetgraphError(f"which architecture is {checkpoint}? no {PARAMS} beside it: pass --model NAME "
                            "(e.g. lenet300)")
    try:
        params = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NetgraphError(f"{path} is not readable JSON ({type(error).__name__}): pass --model NAME") from None
    if not isinstance(params, dict) or not isinstance(params.get("model"), str) or not params["model"]:
        raise NetgraphError(f"{path} has no \"model\" name: pass --model NAME")
    shape = params.get("input_shape")
    if shape is not None and not (isinstance(shape, list) and shape and all(
            isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
        raise NetgraphError(f"{path}: \"input_shape\" must be a list of positive integers, got {shape!r}")
    classes = params.get("num_classes")
    if classes is not None and not (isinstance(classes, int) and not isinstance(classes, bool) and classes > 0):
        raise NetgraphError(f"{path}: \"num_classes\" must be a positive integer, got {classes!r}")
    return params


def _what(params: dict[str, Any]) -> str:
    """'magnitude (init), target 10^2×, seed 0' from a run's params, if recorded."""
    parts = []
    if isinstance(params.get("method"), str):
        parts.append(params["method"] + (f" ({params['protocol']})" if isinstance(params.get("protocol"), str) else ""))
    target = params.get("target_compression")
    if isinstance(target, (int, float)) and target > 0:
        from netgraph.plots.compression import level_label

        parts.append(f"target {level_label(target)}×")
    if isinstance(params.get("seed"), int):
        parts.append(f"seed {params['seed']}")
    return ", ".join(parts)


@contextmanager
def _step(console: Console, text: str) -> Iterator[None]:
    """A spinner while ``text`` runs, then one line with its duration (stderr)."""
    start = time.perf_counter()
    with console.status(f"{text}…"):
        yield
    console.print(f"[dim]{text}: {time.perf_counter() - start:.1f} s[/dim]")


@app.command("plot")
def plot_command(
    checkpoint: Annotated[Path, typer.Argument(help="Weights to draw (.pt/.pth/.safetensors, prune masks honoured).")],
    model: Annotated[str | None, typer.Option(
        help="Architecture (default: \"model\" of the params.json beside the checkpoint).")] = None,
    input_shape: Annotated[str | None, typer.Option(
        help="Per-sample input shape, e.g. 1,28,28 (default: params.json, else the model's).")] = None,
    num_classes: Annotated[int | None, typer.Option(help="Output classes (default: params.json, else 10 for project and import models, 1000 for torchvision).")] = None,
    out: Annotated[Path, typer.Option(help="Directory for the PNG/SVG/HTML figures.")] = Path("netgraph-plots"),
    view: Annotated[str, typer.Option(
        help="Paths drawing: channels (every channel), layers (aggregated), auto (layers for big nets).")] = "auto",
    plotlyjs: Annotated[str, typer.Option(
        help="HTML: 'directory' (one plotly.min.js in --out), a path to a shared .js file (written once, "
             "linked relatively), 'cdn' (needs internet to view) or 'embed'.")] = "directory",
    unsafe_pickle: Annotated[bool, typer.Option(help="Allow a checkpoint that is a pickled full model (runs code: trusted files only).")] = False,
) -> None:
    """Draw CHECKPOINT's surviving input->output paths, per-layer alive weights
    and (MLPs on images) reaching input pixels, as PNG, SVG and HTML."""
    from netgraph.plots.model import VIEWS
    from netgraph.plots.style import PLOTLYJS_MODES

    if view not in VIEWS:
        raise NetgraphError(f"--view must be one of {', '.join(VIEWS)}, got '{view}'")
    if plotlyjs not in PLOTLYJS_MODES and not plotlyjs.endswith(".js"):
        raise NetgraphError(f"--plotlyjs must be one of {', '.join(PLOTLYJS_MODES)} or a path ending in .js, "
                            f"got '{plotlyjs}'")
    if out.exists() and not out.is_dir():
        raise NetgraphError(f"--out {out} is a file, not a directory")
    if not checkpoint.is_file():
        raise NetgraphError(f"checkpoint {checkpoint} does not exist")
    try:  # params.json fills what the options leave out; an explicit option wins
        params = read_params(checkpoint)
    except NetgraphError:
        if not model:
            raise
        params = {}
    from netgraph.cli.loading import parse_shape, resolve_model

    name = model or params["model"]
    shape = parse_shape(input_shape) or (tuple(params["input_shape"]) if params.get("input_shape") else None)
    classes = num_classes if num_classes is not None else params.get("num_classes")
    console = Console(stderr=True)
    with _step(console, f"loading {checkpoint} into {name}"):
        net, shape = resolve_model(name, checkpoint, shape, classes, unsafe_pickle)
    from netgraph.connectivity.propagate import flows
    from netgraph.connectivity.report import analyze
    from netgraph.graph.tracer import trace
    from netgraph.plots import plot_model

    with _step(console, "tracing the channel graph"):
        graph = trace(net, input_shape=shape)
    with _step(console, "propagating flows and counting alive weights"):
        result = flows(graph)
        report = analyze(graph, result)
    what = _what(params)
    title = f"{name} · {checkpoint.parent.name}/{checkpoint.name}" + (f"\n{what}" if what else "")
    written = plot_model(graph, result, report, out, name=checkpoint.stem, title=title, input_shape=shape, view=view,
                         formats=("png", "svg"), plotlyjs=plotlyjs, step=lambda text: _step(console, text))
    Console().print("wrote " + ", ".join(str(p) for p in written))
