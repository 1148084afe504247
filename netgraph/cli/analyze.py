"""``netgraph analyze``: is a (pruned) checkpoint still connected, and where does it break?"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, Optional

import typer
from rich.console import Console
from rich.table import Table

from netgraph.cli.app import app
from netgraph.cli.paths import writable_file
from netgraph.errors import EXIT_DISCONNECTED, EXIT_OK, NetgraphError
from netgraph.text import bounded_list

if TYPE_CHECKING:  # the command imports torch and the tracer when it runs, not when the CLI starts
    from netgraph.connectivity.report import ConnectivityReport


def _names(names: list[str], limit: int = 6) -> str:
    if not names:
        return "none"
    return bounded_list(names, limit)


def compression_text(value: float | None) -> str:
    """A compression as the CLI prints it: ``100.00x``, ``inf`` (nothing left), ``-`` (none)."""
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.2f}x"


def status_markup(disconnected: bool) -> str:
    return "[bold red]DISCONNECTED[/]" if disconnected else "[bold green]connected[/]"


def exit_for(disconnected: bool) -> typer.Exit:
    """Exit 3 for a disconnected network, 0 for a connected one (``analyze`` and ``prune``)."""
    return typer.Exit(EXIT_DISCONNECTED if disconnected else EXIT_OK)


def render_report(report: ConnectivityReport, console: Console, show_layers: bool = True) -> None:
    """Print the report as rich tables (per layer, then the network summary)."""
    if show_layers:
        table = Table(title=f"{report.model}: per-layer connectivity", show_lines=False)
        for column in ("layer", "params", "nonzero", "alive", "dead", "in alive", "out alive", "path share", "flags"):
            table.add_column(column, justify="left" if column in ("layer", "flags") else "right")
        for layer in report.layers:
            flags = " ".join(f for f, on in (("COLLAPSED", layer.collapsed), ("CUT", layer.cut)) if on)
            if layer.nonfinite:
                flags += f" {layer.nonfinite} NaN/Inf"
            style = "red" if layer.cut else ("yellow" if layer.dead else None)
            table.add_row(
                layer.name, f"{layer.parameters:,}", f"{layer.nonzero:,}", f"{layer.alive:,}", f"{layer.dead:,}",
                f"{layer.in_alive}/{layer.in_width}", f"{layer.out_alive}/{layer.out_width}",
                f"{layer.path_share:.3f}", flags.strip(), style=style,
            )
        console.print(table)
    status = status_markup(report.disconnected)
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    rows = [
        ("network", f"{status} ({report.outputs_alive}/{report.outputs} outputs, {report.inputs_alive}/{report.inputs} inputs alive)"),
        ("log phi", "-inf" if math.isinf(report.log_phi) else f"{report.log_phi:.4f}"),
        ("graph", f"{report.nodes:,} channel nodes, {report.edges:,} edges"),
        ("prunable weights", f"{report.parameters:,} total, {report.nonzero:,} nonzero, {report.alive:,} alive"),
        ("dead weights", f"{report.dead:,} (nonzero but on no input->output path)"),
        ("compression", f"nominal {compression_text(report.nominal_compression)}, effective {compression_text(report.effective_compression)}"),
        ("collapsed layers", _names(report.collapsed_layers)),
        ("cut layers", _names(report.cut_layers)),
        ("bottleneck", report.bottleneck or "-"),
        ("constant units", f"{report.constant_units} (bias-only: no input reaches them)"),
    ]
    if report.nonfinite_weights:
        rows.append(("[red]NaN/Inf weights[/]", f"{report.nonfinite_weights:,} (counted as present, zero flow)"))
    for row in rows:
        summary.add_row(*row)
    console.print(summary)


def disconnected_hint(report: ConnectivityReport) -> str | None:
    """Why a dense model can be disconnected: an all-zero layer in an otherwise dense net
    is usually zero-initialised by design (torchvision's ViTs zero their head)."""
    if not report.disconnected or report.bottleneck not in report.collapsed_layers:
        return None
    others = [layer for layer in report.layers if layer.name != report.bottleneck]
    if others and all(layer.nonzero == layer.parameters for layer in others):
        return (f"{report.bottleneck} is all zeros in an otherwise dense model: some architectures "
                "zero-initialise a layer (torchvision ViTs zero heads.head); analyse trained weights (--checkpoint)")
    return None


def _to_meta(inputs):  # type: ignore[no-untyped-def]
    """Example inputs for a meta-device model: same shapes and dtypes, no data."""
    if isinstance(inputs, dict):
        return {key: value.to("meta") for key, value in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(value.to("meta") for value in inputs)
    return inputs.to("meta")


@app.command("analyze")
def analyze_command(
    model: Annotated[str, typer.Argument(help="Project model (lenet300, resnet20...), torchvision name, or package.module:factory (resolved from the current directory).")],
    checkpoint: Annotated[Optional[Path], typer.Option(help="State dict: .pt/.pth (weights only) or .safetensors; prune masks are honoured.")] = None,
    input_shape: Annotated[Optional[list[str]], typer.Option(metavar="SHAPE", help="One sample's input shape, e.g. 3,224,224 (a leading batch of 1 is accepted); repeat for several inputs (default: the model's).")] = None,
    input_dtype: Annotated[Literal["float", "long"], typer.Option(help="float: standard normal inputs; long: token ids below the first embedding's size.")] = "float",
    example_input: Annotated[Optional[Path], typer.Option(help="A .pt file holding the input: a tensor, a tuple of tensors or a dict of keyword tensors (with a batch dim).")] = None,
    num_classes: Annotated[Optional[int], typer.Option(help="Output classes when building the model (default 10 for project models, 1000 for torchvision).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the machine-readable report here ('-': stdout, the table then goes to stderr).")] = None,
    strip_dead: Annotated[Optional[Path], typer.Option(help="Write a checkpoint with dead weights zeroed (verified output-preserving).")] = None,
    leaf: Annotated[Optional[list[str]], typer.Option(metavar="NAME", help="Module name or class to treat as an opaque leaf (repeatable).")] = None,
    unsafe_pickle: Annotated[bool, typer.Option(help="Allow a checkpoint that is a pickled full model (runs code: trusted files only).")] = False,
    stream: Annotated[bool, typer.Option(help="Build the model on the meta device and read the .safetensors checkpoint one tensor at a time (checkpoints too big to hold).")] = False,
    layers: Annotated[bool, typer.Option(help="Show the per-layer table.")] = True,
) -> int:
    """Trace MODEL into its channel graph and report input-output connectivity.

    Exit code 0: connected; 3: disconnected (no output reachable); 2: bad input.
    """
    import torch

    from netgraph.atomic import atomic_write_json
    from netgraph.cli.loading import example_inputs, leaf_modules, load_example_input, parse_shape, resolve_model
    from netgraph.connectivity import analyze, flows, strip_dead_weights
    from netgraph.graph.tracer import trace

    writable_file(json_out, "--json")
    writable_file(strip_dead, "--strip-dead")
    if example_input is not None and input_shape:
        raise NetgraphError("give --example-input or --input-shape, not both")
    if strip_dead is not None and (example_input is not None or len(input_shape or []) > 1 or input_dtype != "float"):
        raise NetgraphError("--strip-dead verifies on random float inputs of one --input-shape; "
                            "not with several, token or file inputs")
    shapes = [parse_shape(text) for text in input_shape or []]
    several = len(shapes) > 1 or example_input is not None or input_dtype != "float"
    if stream and (checkpoint is None or checkpoint.suffix != ".safetensors" or strip_dead is not None):
        raise NetgraphError("--stream reads a .safetensors --checkpoint, and cannot be combined with --strip-dead")
    if stream and not checkpoint.is_file():
        raise NetgraphError(f"checkpoint not found: {checkpoint}")
    with torch.device("meta") if stream else contextlib.nullcontext():  # streaming: no memory for the model
        net, shape = resolve_model(model, None if stream else checkpoint, shapes[0] if shapes else None,
                                   num_classes, unsafe_pickle, need_shape=not several)
    if example_input is not None:
        inputs = load_example_input(example_input)
    elif several:
        if shape is None:
            raise NetgraphError(f"no default input shape for '{model}': pass --input-shape")
        inputs = example_inputs(net, shapes if len(shapes) > 1 else [shape], input_dtype)
    else:
        inputs = None
    leaves = leaf_modules(net, leaf or [])
    if stream:
        from netgraph.connectivity.streaming import analyze_streaming

        inputs = None if inputs is None else _to_meta(inputs)
        report = analyze_streaming(net, checkpoint, inputs, None if inputs is not None else shape, leaves)
    else:
        graph = trace(net, example_input=inputs, input_shape=None if inputs is not None else shape,
                      leaf_modules=leaves)
        result = flows(graph)
        report = analyze(graph, result)
    to_stdout = json_out is not None and str(json_out) == "-"
    console = Console(width=None if Console().is_terminal else 160, stderr=to_stdout)
    render_report(report, console, show_layers=layers)
    hint = disconnected_hint(report)
    if hint:
        console.print(f"hint: {hint}")
    if strip_dead is not None:
        outcome = strip_dead_weights(graph, result, shape, strip_dead)
        console.print(outcome.summary())
    if to_stdout:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    elif json_out is not None:
        atomic_write_json(json_out, report.to_dict())
        console.print(f"report written to {json_out}")
    raise exit_for(report.disconnected)
