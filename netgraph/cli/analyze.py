"""``netgraph analyze``: is a (pruned) checkpoint still connected, and where does it break?"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from netgraph.atomic import atomic_write_json
from netgraph.cli.app import app
from netgraph.cli.loading import leaf_modules, parse_dtype, parse_shape, resolve_model
from netgraph.connectivity.propagate import flows
from netgraph.connectivity.report import ConnectivityReport, analyze
from netgraph.errors import EXIT_DISCONNECTED, EXIT_OK, NetgraphError
from netgraph.graph.tracer import trace
from netgraph.text import bounded_list


def _names(names: list[str], limit: int = 6) -> str:
    if not names:
        return "none"
    return bounded_list(names, limit)


def _ratio(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}x"


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
    status = "[bold red]DISCONNECTED[/]" if report.disconnected else "[bold green]connected[/]"
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    rows = [
        ("network", f"{status} ({report.outputs_alive}/{report.outputs} outputs, {report.inputs_alive}/{report.inputs} inputs alive)"),
        ("log phi", "-inf" if math.isinf(report.log_phi) else f"{report.log_phi:.4f}"),
        ("graph", f"{report.nodes:,} channel nodes, {report.edges:,} edges"),
        ("prunable weights", f"{report.parameters:,} total, {report.nonzero:,} nonzero, {report.alive:,} alive"),
        ("dead weights", f"{report.dead:,} (nonzero but on no input->output path)"),
        ("compression", f"nominal {_ratio(report.nominal_compression)}, effective {_ratio(report.effective_compression)}"),
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


@app.command("analyze")
def analyze_command(
    model: Annotated[str, typer.Argument(help="Project model (lenet300, resnet20...), torchvision name, or package.module:factory.")],
    checkpoint: Annotated[Optional[Path], typer.Option(help="State dict: .pt/.pth (weights only) or .safetensors; prune masks are honoured.")] = None,
    input_shape: Annotated[Optional[str], typer.Option(help="Per-sample input shape, e.g. 3,224,224 (default: the model's).")] = None,
    num_classes: Annotated[Optional[int], typer.Option(help="Output classes when building the model (default 10 for project models, 1000 for torchvision).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the machine-readable report here.")] = None,
    strip_dead: Annotated[Optional[Path], typer.Option(help="Write a checkpoint with dead weights zeroed (verified output-preserving).")] = None,
    leaf: Annotated[Optional[list[str]], typer.Option(help="Module name or class to treat as an opaque leaf (repeatable).")] = None,
    unsafe_pickle: Annotated[bool, typer.Option(help="Allow a checkpoint that is a pickled full model (runs code: trusted files only).")] = False,
    layers: Annotated[bool, typer.Option(help="Show the per-layer table.")] = True,
    input_dtype: Annotated[Optional[str], typer.Option(help="Input dtype: float32 (default) or long (token ids below the first Embedding's size).")] = None,
) -> int:
    """Trace MODEL into its channel graph and report input-output connectivity.

    Exit code 0: connected; 3: disconnected (no output reachable); 2: bad input.
    """
    if json_out is not None and json_out.is_dir():
        raise NetgraphError(f"--json {json_out} is a directory")
    shape = parse_shape(input_shape)
    net, shape = resolve_model(model, checkpoint, shape, num_classes, unsafe_pickle)
    graph = trace(net, input_shape=shape, leaf_modules=leaf_modules(net, leaf or []), input_dtype=parse_dtype(input_dtype))
    result = flows(graph)
    report = analyze(graph, result)
    console = Console(width=None if Console().is_terminal else 160)
    render_report(report, console, show_layers=layers)
    if json_out is not None:
        atomic_write_json(json_out, report.to_dict())
        console.print(f"report written to {json_out}")
    if strip_dead is not None:
        from netgraph.connectivity.strip import strip_dead_weights

        outcome = strip_dead_weights(graph, result, shape, strip_dead)
        console.print(outcome.summary())
    raise typer.Exit(EXIT_DISCONNECTED if report.disconnected else EXIT_OK)
