"""``netgraph plot``: the surviving paths and per-layer alive/dead weights of one checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from netgraph.cli.app import app
from netgraph.errors import NetgraphError


def _model_name(checkpoint: Path, model: str | None) -> str:
    """``--model``, else the ``model`` recorded in a ``params.json`` beside the checkpoint."""
    if model:
        return model
    params = checkpoint.parent / "params.json"
    if params.is_file():
        try:
            recorded = json.loads(params.read_text()).get("model")
        except (json.JSONDecodeError, AttributeError):
            recorded = None
        if isinstance(recorded, str):
            return recorded
    raise NetgraphError(f"which architecture is {checkpoint}? pass --model NAME (e.g. lenet300)")


@app.command("plot")
def plot_command(
    checkpoint: Annotated[Path, typer.Argument(help="Weights to draw (.pt/.pth/.safetensors, prune masks honoured).")],
    model: Annotated[Optional[str], typer.Option(help="Architecture (default: read from params.json beside the checkpoint).")] = None,
    input_shape: Annotated[Optional[str], typer.Option(help="Per-sample input shape, e.g. 1,28,28.")] = None,
    num_classes: Optional[int] = None,
    out: Annotated[Path, typer.Option(help="Directory for the PNG/SVG/HTML figures.")] = Path("netgraph-plots"),
    unsafe_pickle: bool = False,
) -> None:
    """Draw CHECKPOINT's surviving input->output paths and per-layer bars (PNG, SVG, HTML)."""
    from netgraph.cli.loading import parse_shape, resolve_model
    from netgraph.connectivity.propagate import flows
    from netgraph.connectivity.report import analyze
    from netgraph.graph.tracer import trace
    from netgraph.plots import plot_model

    if out.exists() and not out.is_dir():
        raise NetgraphError(f"--out {out} is a file, not a directory")
    net, shape = resolve_model(_model_name(checkpoint, model), checkpoint, parse_shape(input_shape), num_classes, unsafe_pickle)
    graph = trace(net, input_shape=shape)
    result = flows(graph)
    written = plot_model(graph, result, analyze(graph, result), out, name=checkpoint.stem, formats=("png", "svg"))
    Console().print("wrote " + ", ".join(str(p) for p in written))
