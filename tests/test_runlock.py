"""One writer per run directory: a second job is refused with the holder's pid, the
lock dies with its holder (kill -9 included), and a killed write's temp files go."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netgraph.errors import NetgraphError
from netgraph.training.runlock import LOCK_NAME, run_lock

HOLD = "import sys, time\nfrom netgraph.training.runlock import run_lock\nwith run_lock(sys.argv[1]):\n" \
       "    print('held', flush=True)\n    time.sleep(60)\n"


def _holder(directory: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_job_is_refused_with_the_holders_pid_until_it_dies(tmp_path: Path, run_cli) -> None:
    run = tmp_path / "run"
    holder = _holder(run)
    try:
        with pytest.raises(NetgraphError, match=f"in use by another job \\(pid {holder.pid}\\)"):
            with run_lock(run):
                pass
        run_cli("train", "lenet300", "--out", run, "--resume", "--epochs", "1",
                "--max-steps-per-epoch", "1").assert_error(f"pid {holder.pid}")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    (run / ".checkpoint.pt.0123abcd.tmp").write_bytes(b"half a checkpoint")  # a killed atomic write
    with run_lock(run):
        assert not list(run.glob(".*.tmp"))
        assert (run / LOCK_NAME).read_text().strip() == str(os.getpid())
        with run_lock(run):  # re-entrant in one process: the CLI and the engine both take it
            pass
    assert (run / LOCK_NAME).read_text() == ""


def test_a_lock_is_released_when_its_holder_exits(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    holder.terminate()
    holder.wait()
    started = time.perf_counter()
    with run_lock(tmp_path):
        pass
    assert time.perf_counter() - started < 1
