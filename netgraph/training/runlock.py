"""One writer per run directory: an advisory lock that dies with its holder.

``fcntl.flock`` is released by the kernel when the holding process ends, however it
ends (``kill -9`` included), so a lock is never stale; its file names the holder's
pid for the refusal message. Temporary files that a killed atomic write left behind
(``.checkpoint.pt.<uuid>.tmp``) are removed once the lock is held. In a ``torchrun``
job only rank 0 writes, so only rank 0 locks (:func:`job_run_lock`), and a refusal
there stops every rank at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from netgraph.errors import NetgraphError

LOCK_NAME = ".netgraph.lock"
_HELD: dict[Path, int] = {}  # directory -> nesting depth in this process


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike) -> Iterator[Path]:
    """Hold ``directory``'s lock for the block (re-entrant within one process).

    Raises :class:`NetgraphError` naming the holder's pid when another process holds it.
    """
    path = Path(directory).resolve()
    if path in _HELD:
        _HELD[path] += 1
        try:
            yield path
        finally:
            _HELD[path] -= 1
        return
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise NetgraphError(f"run directory {directory} is in use by another job (pid {holder}); "
                                "wait for it to finish or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        for stale in path.glob(".*.tmp"):  # half-written files of a killed job
            stale.unlink(missing_ok=True)
        _HELD[path] = 1
        try:
            yield path
        finally:
            del _HELD[path]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def job_run_lock(directory: str | os.PathLike, prepare: Callable[[], None] | None = None) -> Iterator[None]:
    """Rank 0 holds ``directory``'s lock for the block (and runs ``prepare`` under it
    first); a :class:`NetgraphError` there is raised on every rank, so the other
    ranks of a ``torchrun`` job stop at once instead of waiting in their first
    collective until the timeout. Outside a process group: :func:`run_lock`."""
    from netgraph.training.distributed import broadcast_object, get_rank

    with contextlib.ExitStack() as held:
        refusal = None
        if get_rank() == 0:
            try:
                held.enter_context(run_lock(directory))
                if prepare is not None:
                    prepare()
            except NetgraphError as error:
                refusal = str(error)
        refusal = broadcast_object(refusal)
        if refusal is not None:
            raise NetgraphError(refusal)
        yield
