"""`recsys up` (foreground) restarts a crashed service process with bounded backoff (issue 16,
item 2), shown with a tiny stand-in process instead of a service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from recsys_tools.stack import Restarter


def _wait(restarter: Restarter, cond, bound: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + bound
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        restarter.poll()
        time.sleep(0.02)


def test_killed_process_is_restarted_with_bounded_backoff(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    log = tmp_path / "standin.log"
    first = subprocess.Popen(argv, start_new_session=True)
    procs = {"standin": first}
    r = Restarter(procs, {"standin": (argv, {}, log)}, initial_s=0.1, max_s=0.3, stable_s=60)
    try:
        seen = [first.pid]
        for n in range(1, 5):
            os.kill(procs["standin"].pid, signal.SIGKILL)
            _wait(r, lambda n=n: r.restarts.get("standin") == n)
            assert procs["standin"].pid not in seen and procs["standin"].poll() is None
            seen.append(procs["standin"].pid)
        assert r._delay["standin"] == 0.3  # doubled from 0.1, capped at max_s
    finally:
        for p in (first, procs["standin"]):
            if p.poll() is None:
                p.kill()
                p.wait()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_detached_supervisor_restarts_a_crash_and_recsys_down_stops_it_first(tmp_path: Path) -> None:
    """`recsys up --detach` leaves a supervisor (`recsys supervise`): it restarts a service whose
    process is gone and records the new pid in stack.json; `recsys down` stops it before the
    services, so nothing comes back."""
    import json

    from recsys_tools import stack

    (tmp_path / "logs").mkdir()
    argv = [sys.executable, "-c", "import time; time.sleep(120)"]
    first = subprocess.Popen(argv, start_new_session=True)
    (tmp_path / stack.STATE_FILE).write_text(json.dumps({"pids": {"standin": first.pid}, "offset": 0}))
    sup_pid = stack._start_supervisor(tmp_path, {"standin": (argv, {}, tmp_path / "logs" / "standin.log")})
    state = tmp_path / stack.STATE_FILE
    try:
        deadline = time.monotonic() + 30
        while json.loads(state.read_text()).get("supervisor") != sup_pid:
            assert time.monotonic() < deadline, "supervisor did not start"
            time.sleep(0.1)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        deadline = time.monotonic() + 30
        while json.loads(state.read_text())["pids"]["standin"] == first.pid:
            assert time.monotonic() < deadline, (tmp_path / "logs" / "supervisor.log").read_text()
            time.sleep(0.1)
        second = json.loads(state.read_text())["pids"]["standin"]
        assert _running(second)
        log = (tmp_path / "logs" / "supervisor.log").read_text()
        assert "restarted" in log, log
        # recsys down: the supervisor first, then the (restarted) service; nothing restarts it
        rc = subprocess.run(
            [sys.executable, "-m", "recsys_tools.cli", "down", "--workdir", str(tmp_path)], timeout=60
        ).returncode
        assert rc == 0
        time.sleep(2.0)
        assert not _running(sup_pid) and not _running(second)
        assert not state.exists()
    finally:
        for pid in (sup_pid, json.loads(state.read_text())["pids"]["standin"] if state.exists() else 0):
            if pid and _running(pid):
                os.kill(pid, signal.SIGKILL)
