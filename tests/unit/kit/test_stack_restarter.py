"""`recsys up` (foreground) restarts a crashed service process with bounded backoff (issue 16,
item 2), shown with a tiny stand-in process instead of a service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from recsys_core.stack import Restarter


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
