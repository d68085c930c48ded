"""`s2hand mlflow-ui` stops its whole server when it is told to stop (issue 23): the real server,
`mlflow ui`, runs ~14 gunicorn/uvicorn workers below it, which kept listening after a SIGTERM to
`s2hand mlflow-ui`. Here a small fake server (one worker, `sleep 60`) stands in for mlflow, through
the command's injectable argv builder (s2hand.ablations.cli._ui_command), so the test takes seconds.

    .venv/bin/python -m pytest -q tests/test_mlflow_ui.py
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file() or shutil.which("sleep") is None,
                                reason="needs Linux /proc and a sleep command")

# argv: PIDS_FILE MODE. Starts one worker, then writes "server_pid worker_pid" and waits.
# MODE "stubborn": the server and its worker ignore SIGTERM (SIG_IGN is inherited through exec).
FAKE_SERVER = """\
import os, shutil, signal, subprocess, sys, time
for s in (signal.SIGINT, signal.SIGHUP):  # as in a terminal: a background job starts with SIGINT ignored,
    signal.signal(s, signal.SIG_DFL)       # one under nohup with SIGHUP ignored
if sys.argv[2] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
worker = subprocess.Popen([shutil.which("sleep"), "60"])
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {worker.pid}")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _start(tmp_path: Path, code: str) -> tuple[subprocess.Popen, list[int]]:
    """Run `code` (python) from the repository root; wait for the fake server's pids."""
    pids_file = tmp_path / "pids"
    with (tmp_path / "stderr").open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 30
    while not pids_file.is_file():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the fake server did not start: {(tmp_path / 'stderr').read_text()}")
        time.sleep(0.05)
    pids = [int(p) for p in pids_file.read_text().split()]
    assert all(_alive(p) for p in pids)
    return proc, pids


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    """The pids still running after `seconds` (polling)."""
    deadline = time.monotonic() + seconds
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def _cleanup(proc: subprocess.Popen, pids: list[int]) -> None:
    for pid in [proc.pid, *pids]:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_mlflow_ui_ends_the_whole_server_on_a_signal(tmp_path, sig):
    fake, db = tmp_path / "fake_server.py", tmp_path / "mlruns.db"
    fake.write_text(FAKE_SERVER)
    db.touch()
    code = ("import sys\n"
            "from s2hand.ablations import cli\n"
            f"cli._ui_command = lambda db, port: [sys.executable, {str(fake)!r}, {str(tmp_path / 'pids')!r}, 'plain']\n"
            "from s2hand.cli import main\n"
            f"sys.exit(main(['mlflow-ui', '--db', {str(db)!r}, '--port', '5999']))\n")
    proc, pids = _start(tmp_path, code)
    try:
        os.kill(proc.pid, sig)
        left = _gone_within(pids, 5)
        assert not left, f"still running 5 s after {sig.name} to `s2hand mlflow-ui`: {left}"
        assert proc.wait(timeout=5) == 128 + sig  # the server died of the forwarded signal
    finally:
        _cleanup(proc, pids)


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    fake = tmp_path / "fake_server.py"
    fake.write_text(FAKE_SERVER)
    code = ("import sys\n"
            "from s2hand.ablations.cli import _serve\n"
            f"sys.exit(_serve([sys.executable, {str(fake)!r}, {str(tmp_path / 'pids')!r}, 'stubborn'], grace_s=1.0))\n")
    proc, pids = _start(tmp_path, code)
    try:
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(0.5)
        assert all(_alive(p) for p in pids)  # SIGTERM ignored: still within the grace period
        left = _gone_within(pids, 5)
        assert not left, f"still running after the grace period: {left}"
        assert proc.wait(timeout=5) == 128 + signal.SIGKILL
    finally:
        _cleanup(proc, pids)


def test_serve_returns_the_server_exit_status():
    from s2hand.ablations.cli import _serve

    assert _serve([sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert _serve([sys.executable, "-c", "pass"]) == 0
