"""Output paths, checked before any work starts: a job never fails at its end for want of a place to write."""

from __future__ import annotations

import tempfile
from pathlib import Path

from netgraph.errors import NetgraphError

RUN_FILES = ("checkpoint.pt", "metrics.jsonl", "model.pt", "params.json", "report.json", "config.json")
"""Files whose presence marks a directory as holding a run."""


def _probe(directory: Path, flag: str, path: Path) -> None:
    """Create and drop a temporary file in the nearest existing ancestor of ``directory``."""
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NetgraphError(f"{flag} {path}: {existing} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise NetgraphError(f"{flag} {path}: cannot write in {existing} ({error.strerror or error})") from None


def writable_file(path: Path | None, flag: str) -> None:
    """Refuse an output file that is a directory or whose directory cannot be written."""
    if path is None or str(path) == "-":
        return
    if path.is_dir():
        raise NetgraphError(f"{flag} {path} is a directory: give a file name")
    _probe(path.parent if str(path.parent) else Path("."), flag, path)


def writable_directory(path: Path, flag: str) -> None:
    """Refuse an output directory that is a file or cannot be written (nothing is created)."""
    if path.exists() and not path.is_dir():
        raise NetgraphError(f"{flag} {path} is a file, not a directory")
    _probe(path, flag, path)


def run_directory(path: Path, flag: str = "--out", resume: bool = False, force: bool = False) -> None:
    """Refuse an output run directory that is a file, cannot be written, or already holds
    a run that neither ``--resume`` nor ``--force`` says to continue or replace."""
    writable_directory(path, flag)
    held = [name for name in RUN_FILES if (path / name).exists()]
    if held and not (resume or force):
        raise NetgraphError(
            f"{flag} {path} already holds a run ({', '.join(held)}): pass --resume to continue it, "
            "--force to replace it, or choose another directory"
        )
