"""What the whole-stack benches share: starting a stack and drawing Recommend requests."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

from recsys_tools.stack import SERVICES

GATEWAY_PORT = next(s.port for s in SERVICES if s.name == "gateway")


def start_stack(data: str, workdir: Path, artifacts: Path, offset: int, train_args: str = "") -> str:
    """`recsys up --detach` (trains when the artifact root has no model); returns the gateway address."""
    cmd = [
        sys.executable, "-m", "recsys_tools.cli", "up", "--detach", "--data", data,
        "--workdir", str(workdir), "--artifacts", str(artifacts), "--port-offset", str(offset),
    ]  # fmt: skip
    if train_args:
        cmd += ["--train-args", train_args]
    print("starting the stack:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return f"127.0.0.1:{GATEWAY_PORT + offset}"


def recommend_requests(data: str, k: int, n_users: int = 500) -> list[dict[str, Any]]:
    """Recommend-by-user-id requests for up to ``n_users`` users of the data set (fixed shuffle)."""
    from recsys_data import load_dataset

    users = sorted(set(load_dataset(data).interactions.user_ids.tolist()))
    random.Random(0).shuffle(users)
    return [{"user_id": int(u), "k": k} for u in users[:n_users]]
