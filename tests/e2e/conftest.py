"""The whole stack for end-to-end tests: `recsys up --detach` on a generated data set.

One stack per test session (training, embedded PostgreSQL, Milvus Lite, four
services as real processes on free ports); `recsys down` at the end. Tests get
a ``Stack`` with the addresses and helpers to kill and restart one service.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from recsys_tools import stack as stack_mod

# Small enough to train in well under a minute on 2 cores, big enough to be non-trivial.
N_USERS, N_MOVIES, N_RATINGS = 150, 300, 9000
TRAIN_ARGS = "--epochs 2 --max-steps-per-epoch 30 --quiet --seed 1"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_offset() -> int:
    for _ in range(50):
        off = random.randrange(1000, 9000)
        ports = [svc.port + off for svc in stack_mod.SERVICES] + [
            svc.metrics_port + off for svc in stack_mod.SERVICES
        ]
        ports.append(stack_mod.WEB_PORT + off)
        if all(_free(p) for p in ports):
            return off
    raise RuntimeError("no free port range for the stack")


def _running(pid: int) -> bool:
    """True while the process exists and is not a zombie (nobody may reap re-parented children)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@dataclass
class Stack:
    workdir: Path
    artifacts: Path
    data: Path
    offset: int

    def target(self, name: str) -> str:
        svc = next(s for s in stack_mod.SERVICES if s.name == name)
        return f"127.0.0.1:{svc.port + self.offset}"

    @property
    def gateway_target(self) -> str:
        return self.target("gateway")

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{stack_mod.WEB_PORT + self.offset}"

    def pids(self) -> dict[str, int]:
        return dict(json.loads((self.workdir / stack_mod.STATE_FILE).read_text())["pids"])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """Signal the service and wait for its process to end; its pid."""
        pid = self.pids()[name]
        os.kill(pid, sig)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if not _running(pid):
                return pid
            time.sleep(0.1)
        raise RuntimeError(f"{name} (pid {pid}) did not exit")

    def supervisor(self) -> int:
        return int(json.loads((self.workdir / stack_mod.STATE_FILE).read_text())["supervisor"])

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 60.0) -> int:
        """Nobody but `recsys up --detach`'s supervisor restarts a service here (issue #16): wait
        until stack.json names a new, running process for ``name``; its pid."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.pids()[name]
            if pid != old_pid and _running(pid):
                return pid
            time.sleep(0.1)
        log = (self.workdir / "logs" / "supervisor.log").read_text()[-2000:]
        raise AssertionError(f"{name} not restarted by the supervisor within {timeout:.0f}s:\n{log}")

    @contextlib.contextmanager
    def supervisor_paused(self) -> Iterator[None]:
        """Hold the supervisor (SIGSTOP) so that a killed service stays down while a test looks
        at the outage; it restarts the service once resumed."""
        pid = self.supervisor()
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from recsys_data.synthetic import generate

    root = tmp_path_factory.mktemp("stack")
    data = generate(
        root / "synthetic", fmt="100k", n_users=N_USERS, n_movies=N_MOVIES, n_ratings=N_RATINGS, seed=1
    )
    workdir, artifacts = root / "var", root / "artifacts"
    offset = _port_offset()
    cmd = [
        sys.executable, "-m", "recsys_tools.cli", "up", "--detach",
        "--data", str(data), "--workdir", str(workdir), "--artifacts", str(artifacts),
        "--port-offset", str(offset), "--train-args", TRAIN_ARGS,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RECSYS_CATALOG_DSN", None)  # the embedded PostgreSQL, as a new user gets it
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        logs = ""
        for log in sorted((workdir / "logs").glob("*.log")) if (workdir / "logs").exists() else []:
            logs += f"\n--- {log.name} (tail)\n" + "\n".join(
                log.read_text(errors="replace").splitlines()[-30:]
            )
        pytest.fail(
            f"recsys up failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}{logs}"
        )
    st = Stack(workdir=workdir, artifacts=artifacts, data=data, offset=offset)

    def _interrupt(signum: int, frame: object) -> None:  # a SIGTERMed pytest still runs `recsys down`
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield st
    finally:
        signal.signal(signal.SIGTERM, previous)
        subprocess.run(
            [sys.executable, "-m", "recsys_tools.cli", "down", "--workdir", str(workdir)],
            timeout=120,
            check=False,
        )


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    """Print (and, with RECSYS_RELIABILITY_REPORT set, write) the reliability tables the fault
    and hostile-input suites filled (tests/e2e/reliability_report.py)."""
    from .reliability_report import REPORT

    if not REPORT:
        return
    path = REPORT.write()
    terminalreporter.section("reliability report (docs/reliability.md)")
    terminalreporter.write(REPORT.markdown())
    if path is not None:
        terminalreporter.write_line(f"written to {path}")
