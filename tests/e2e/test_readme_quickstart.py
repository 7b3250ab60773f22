"""README's quick start, as written, from a clean clone.

The two commands are read from README.md. The test command must be what CI runs; the
main-job command (`bash scripts/setup.sh && .venv/bin/recsys up`) runs in a fresh `git clone`
of this commit: CI itself proves `scripts/setup.sh` on a fresh machine, so here the clone
uses this environment's `recsys` (a second 2 GB virtualenv would not fit the suite's time),
and `recsys up` gets `--detach` (to return), a port offset (to run beside other tests) and
short training (to fit CI's time). Everything else is the user's path: default data set
lookup, default ./var and ./artifacts, embedded PostgreSQL, Milvus Lite.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc

from .conftest import TRAIN_ARGS, _port_offset

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", quick, flags=re.S)][:2]


def test_readme_has_the_two_commands_and_ci_runs_the_test_command() -> None:
    main_cmd, test_cmd = readme_commands()
    assert main_cmd == "bash scripts/setup.sh && .venv/bin/recsys up"
    ci = (ROOT / ".ci" / "run").read_text()
    for part in test_cmd.split("&&"):
        assert part.strip().split("#")[0].strip() in ci, (
            f"CI does not run `{part.strip()}` of README's test command"
        )
    for script in re.findall(r"scripts/[\w.-]+", main_cmd + test_cmd):
        assert (ROOT / script).is_file(), script


def test_main_job_from_a_clean_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    main_cmd, _ = readme_commands()
    up = main_cmd.split("&&")[1].split()
    assert up[0] == ".venv/bin/recsys"
    offset = _port_offset()
    cmd = [sys.executable, "-m", "recsys_tools.cli", *up[1:], "--detach", "--port-offset", str(offset)]
    cmd += ["--train-args", TRAIN_ARGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    shared = ROOT.parent / "shared" / "data" / "movielens"
    if shared.is_dir():  # the clone lives in a temp dir: point the data lookup where CI has the data
        env["RECSYS_DATA_DIR"] = str(shared)
    env.pop("RECSYS_CATALOG_DSN", None)
    proc = subprocess.run(cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "recsys is up" in proc.stdout
        assert (clone / "artifacts" / "latest").is_file()
        target = f"127.0.0.1:{50051 + offset}"

        async def call() -> gateway_pb2.RecommendResponse:
            async with grpc.aio.insecure_channel(target) as ch:
                return await gateway_pb2_grpc.GatewayStub(ch).Recommend(
                    gateway_pb2.RecommendRequest(liked=[common_pb2.RatedMovie(movie_id=1)], k=5), timeout=20
                )

        import asyncio

        resp = asyncio.run(call())
        assert len(resp.recommendations) == 5
        status = subprocess.run(
            [sys.executable, "-m", "recsys_tools.cli", "status"],
            cwd=clone,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count("SERVING") >= 5
    finally:
        subprocess.run(
            [sys.executable, "-m", "recsys_tools.cli", "down"], cwd=clone, timeout=120, check=False
        )
    assert not (clone / "var" / "stack.json").exists()
