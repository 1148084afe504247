"""Resumable units of work on disk: a unit is finished when its record exists.

An experiment splits into units (one training run, one pruning run, one level of
a trajectory). Each unit ends by writing one JSON *record* atomically
(:mod:`netgraph.atomic`), after everything else it writes (logs, state dicts), so
an interrupted experiment (a crash, Ctrl-C) leaves only whole records behind and
running it again recomputes exactly the units without one. ``netgraph compare``
keeps a directory per run whose ``metrics.json`` is the record; the analysis
scripts keep one ``runs/<key>.json`` per unit (:func:`run_unit`).

An output directory also says what experiment it holds (an *identity* file such
as ``sweep.json``): :func:`claim_out` refuses to mix the units of two different
experiments in one directory, because a resumed unit would silently belong to
the other one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from netgraph.atomic import atomic_write_json
from netgraph.errors import NetgraphError
from netgraph.text import bounded_list

logger = logging.getLogger(__name__)

__all__ = [
    "claim_out",
    "finished",
    "jsonable",
    "read_record",
    "resume",
    "run_unit",
    "unit_path",
    "write_record",
]


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of ``value``: non-finite floats become None (JSON has no
    inf/nan), tuples lists, keys strings, numpy/torch scalars Python numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return jsonable(value.item())
    return value


def finished(record: Path, *companions: Path) -> bool:
    """Whether the unit whose record is ``record`` finished: the record exists, and
    so do the ``companions`` it needs (a state dict a later unit loads; a record
    whose weights were deleted is not finished)."""
    return record.exists() and all(path.exists() for path in companions)


def read_record(record: Path) -> Any | None:
    """The JSON in ``record``, or None if it is missing or unreadable (it cannot be
    half-written, but a record edited by hand is never trusted)."""
    try:
        return json.loads(record.read_text())
    except (OSError, ValueError):
        return None


def write_record(record: Path, value: Any) -> Path:
    """Write ``value`` (made :func:`jsonable`) to ``record`` atomically: the last
    write of a unit, which marks it finished."""
    return atomic_write_json(record, jsonable(value))


def resume(record: Path, compute: Callable[[], Any], *, companions: Sequence[Path] = (),
           label: str | None = None) -> Any:
    """The stored value of a finished unit, else ``compute()``, stored in ``record``.

    Returns what the record holds (a computed value read back, so a fresh and a
    resumed run see the same JSON types). ``label`` names the unit in a one-line
    note on stderr when it was computed (None: silent).
    """
    if finished(record, *companions):
        value = read_record(record)
        if value is not None:
            return value
    started = time.perf_counter()
    write_record(record, compute())
    if label is not None:
        logger.info("[done] %s in %.1fs", label, time.perf_counter() - started)
    return read_record(record)


def unit_path(out: str | os.PathLike, *key: Any) -> Path:
    """``<out>/runs/<key parts joined by __>.json``, each part made file-system safe."""
    parts = [re.sub(r"[^A-Za-z0-9._=+-]", "_", str(k)) for k in key]
    return Path(out) / "runs" / ("__".join(parts) + ".json")


def run_unit(out: str | os.PathLike, key: Sequence[Any], compute: Callable[[], Any], log: bool = True,
             companions: Sequence[Path] = ()) -> Any:
    """:func:`resume` the unit ``key`` of the experiment in ``out`` (its record is
    :func:`unit_path`); ``log`` says on stderr how long a computed unit took."""
    return resume(unit_path(out, *key), compute, companions=companions,
                  label="/".join(map(str, key)) if log else None)


# --- the identity of an output directory ----------------------------------------------------


def _differences(saved: Any, now: Any, prefix: str = "") -> list[str]:
    """Human-readable differences of two JSON values, one per differing leaf."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out: list[str] = []
        for key in list(dict.fromkeys([*saved, *now])):
            out += _differences(saved.get(key), now.get(key), f"{prefix}{key}.")
        return out
    if saved != now:
        return [f"{prefix.rstrip('.')} {json.dumps(saved)} there vs {json.dumps(now)} now"]
    return []


def claim_out(out: Path, identity: Mapping[str, Any], *, identity_file: str, field: str,
              units: Sequence[str], owned: Sequence[str], force: bool) -> bool:
    """Check that ``out`` may hold the experiment ``identity``; under ``force`` clear it.

    ``out/identity_file`` records the identity of the experiment there under key
    ``field``. A different one (or units without an identity file) is refused with
    a :class:`~netgraph.errors.NetgraphError` saying what differs (``units`` are
    the folders that hold units), unless ``force``: then the ``owned`` entries of ``out`` (what the experiment writes, never other
    files) are deleted. Returns True when ``out`` already holds this experiment
    (its finished units can be resumed).
    """
    if out.exists() and not out.is_dir():
        raise NetgraphError(f"out={out} is a file, not a directory: choose a directory")
    marker = out / identity_file
    wanted = json.loads(json.dumps(identity))  # the identity as it reads back from JSON
    if marker.exists():
        saved = read_record(marker)
        saved = saved.get(field) if isinstance(saved, dict) else None
        if saved is not None and saved == wanted:
            return True
        if not force:
            if saved is None:
                raise NetgraphError(f"{marker} is not a netgraph {field} description: choose another out= or force=True")
            diff = _differences(saved, wanted)
            raise NetgraphError(
                f"{out} holds a different {field} ({bounded_list(diff, 2, '; ')}): choose another out= "
                "or force=True to delete its results"
            )
    elif any((out / name).exists() for name in units) and not force:
        raise NetgraphError(f"{out} holds runs but no {identity_file}: choose another out= or force=True to delete them")
    if force:
        for name in owned:
            target = out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
    return False
