"""The Typer application every ``netgraph`` sub-command registers on."""

from __future__ import annotations

import os
from typing import Annotated

import typer

app = typer.Typer(
    name="netgraph",
    help="Channel-graph connectivity analysis and collapse-aware pruning for PyTorch models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        from netgraph import __version__

        typer.echo(f"netgraph {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Channel-graph connectivity analysis and collapse-aware pruning for PyTorch models."""


def join_torchrun() -> tuple[int, int]:
    """Join the process group ``torchrun`` describes in the environment (a single
    process joins nothing); return ``(rank, world_size)``. The library reads no
    environment variables: the CLI hands it what the launcher set."""
    from netgraph.training.distributed import setup_distributed

    rank, world_size, _ = setup_distributed(int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))
    return rank, world_size
