"""Run by tests/unit/training/test_ddp.py, once per process (under torchrun) or alone: train a
few steps of each loss on DATA and save the weights to OUT/<loss>.pt (rank 0 only)
and the rows of each batch it trained on to OUT/rows-<rank>.txt.

    python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_worker.py DATA OUT BATCH
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from recsys_embedder.training import distributed as DP
from recsys_embedder.training import train as T
from recsys_embedder.training.data import load
from recsys_embedder.training.train import TrainConfig, train

ROWS: list[int] = []  # the next-item rows this process trained on, batch by batch


def _counting_batch(self: T._NextItem, ev):  # type: ignore[no-untyped-def]
    ROWS.append(len(ev))
    return _batch(self, ev)


_batch = T._NextItem.batch
T._NextItem.batch = _counting_batch  # type: ignore[method-assign]


def config(loss: str, batch: int) -> TrainConfig:
    """Small and quick; odd batch sizes leave the two slices unequal (the scaling is tested)."""
    return TrainConfig(
        dim=16,
        hidden=16,
        n_neighbours=4,
        num_random_walks=20,
        epochs=2,
        batch_size=batch,
        item_batch_size=batch,
        max_steps_per_epoch=3,
        loss=loss,
        negatives=32,
        seed=5,
    )


def main(data: str, out: str, batch: int) -> None:
    ctx = DP.from_env()
    if ctx is not None:
        DP.init(ctx, timeout_s=120)
    p = load(data)
    for loss in ("full", "sampled"):
        res = train(p, config(loss, batch), log=lambda _m: None, progress=False, dist=ctx)
        if ctx is None or ctx.is_main:
            torch.save(res.model.state_dict(), Path(out) / f"{loss}.pt")
    rank = 0 if ctx is None else ctx.rank
    (Path(out) / f"rows-{rank}.txt").write_text(" ".join(map(str, ROWS)))
    if ctx is not None:
        ctx.barrier()
        DP.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
