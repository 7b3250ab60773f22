"""Data-parallel training (issue #19): two gloo processes under torchrun, each on its slice of
every global batch, end with the same weights as one process on the whole batch.

The check fails if a rank trains on the whole batch instead of its slice, on the wrong slice,
or if the losses are not scaled so that DDP's average is the global batch's mean (the odd batch
size makes the slices unequal). A control shows that the tolerance is tight enough to see a
different batch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")
BATCH = 63  # slices of 32 and 31 rows
ATOL = 1e-5


def _run(cmd: list[str], data: Path, out: Path, batch: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(
        [*cmd, str(WORKER), str(data), str(out), str(batch)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def _max_diff(a: Path, b: Path) -> float:
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert sa.keys() == sb.keys()
    return max(float((sa[k] - sb[k]).abs().max()) for k in sa)


@pytest.fixture(scope="module")
def runs(tiny_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ddp")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1"]
    _run([*torchrun, "--nproc_per_node", "2"], tiny_data_dir, root / "two", BATCH)
    _run([sys.executable], tiny_data_dir, root / "one", BATCH)
    _run([sys.executable], tiny_data_dir, root / "half", (BATCH + 1) // 2)
    return {"two": root / "two", "one": root / "one", "half": root / "half"}


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_two_processes_give_the_weights_of_one(runs: dict[str, Path], loss: str) -> None:
    diff = _max_diff(runs["two"] / f"{loss}.pt", runs["one"] / f"{loss}.pt")
    assert diff < ATOL, f"{loss}: 2 DDP processes x {BATCH} rows vs 1 process: max |dw| = {diff:.2e}"


def test_each_process_trains_on_its_slice_only(runs: dict[str, Path]) -> None:
    """Weights alone cannot tell a rank's slice from the whole batch scaled down; the row counts
    can: the two processes' batches add up to the one process's, split 32 + 31."""
    one = [int(x) for x in (runs["one"] / "rows-0.txt").read_text().split()]
    r0, r1 = ([int(x) for x in (runs["two"] / f"rows-{r}.txt").read_text().split()] for r in (0, 1))
    assert len(one) == len(r0) == len(r1) > 0
    assert [a + b for a, b in zip(r0, r1, strict=True)] == one
    assert all(a - b in (0, 1) for a, b in zip(r0, r1, strict=True))


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_the_tolerance_sees_a_different_batch(runs: dict[str, Path], loss: str) -> None:
    """What a rank training on its slice alone (no averaging) would look like: far above ATOL."""
    assert _max_diff(runs["half"] / f"{loss}.pt", runs["one"] / f"{loss}.pt") > 100 * ATOL


def test_shards_cover_the_batch_in_order() -> None:
    from recsys_embedder.training.distributed import Distributed

    for n in (0, 1, 2, 7, 63, 64):
        for world in (1, 2, 3):
            slices = [Distributed(r, world, r).shard(n) for r in range(world)]
            rows = [i for s in slices for i in range(n)[s]]
            assert rows == list(range(n))
            sizes = [s.stop - s.start for s in slices]
            assert max(sizes) - min(sizes) <= 1
            scale = [Distributed(r, world, r).loss_scale(sz, n) for r, sz in enumerate(sizes)]
            assert n == 0 or abs(sum(scale) / world - 1.0) < 1e-12


def test_no_launcher_no_process_group() -> None:
    from recsys_embedder.training.distributed import from_env

    assert from_env({}) is None
    ctx = from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}, device="cuda")
    assert ctx is not None and (ctx.rank, ctx.world_size, ctx.backend) == (3, 4, "nccl")
    assert ctx.device("cuda") == "cuda:1" and not ctx.is_main
    with pytest.raises(SystemExit):
        from_env({"WORLD_SIZE": "2", "RANK": "2"})
