"""The Typer application every ``netgraph`` sub-command registers on."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="netgraph",
    help="Channel-graph connectivity analysis and collapse-aware pruning for PyTorch models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Channel-graph connectivity analysis and collapse-aware pruning for PyTorch models."""
