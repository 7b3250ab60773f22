"""Data-parallel training with ``torch.distributed`` (issue #19): what ``recsys train`` does
when ``torchrun`` starts it.

``torchrun --nproc_per_node N`` (or ``--nnodes M --node_rank R`` across machines) sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in every process;
:func:`from_env` reads them and :func:`init` joins the process group (gloo on CPU, NCCL on
CUDA). Without ``WORLD_SIZE`` nothing here runs: the single-process path is unchanged.

Every rank builds the same graph, neighbour tables and model from the same seed and walks the
same global batches; :meth:`Distributed.shard` gives each rank its contiguous slice of a batch
and :meth:`Distributed.loss_scale` the factor that makes DistributedDataParallel's gradient
average (the mean over ranks) equal the gradient of the mean over the *global* batch, also when
the slices differ in size (the last batch of an epoch). Only rank 0 writes checkpoints and the
artifact; the others wait at a barrier.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job (what torchrun put into its environment)."""

    rank: int
    world_size: int
    local_rank: int
    backend: str = "gloo"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous slice of a global batch of ``n`` rows (sizes differ by at most
        one; ranks are in order, so the concatenation of the slices is the batch)."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    def loss_scale(self, n_local: int, n_global: int) -> float:
        """Factor for a loss that is a mean over the local rows: DDP averages the ranks'
        gradients (divides their sum by ``world_size``), so ``mean_local * n_local * world /
        n_global`` averages to the mean over the global batch."""
        return n_local * self.world_size / max(n_global, 1)

    def device(self, device: str) -> str:
        """``cuda`` -> this process's GPU (``cuda:LOCAL_RANK``); anything else unchanged."""
        return f"cuda:{self.local_rank}" if device == "cuda" else device

    def wrap(self, module: nn.Module, device: str) -> DistributedDataParallel:
        ids = [torch.device(device).index] if device.startswith("cuda") else None
        # find_unused_parameters: a step may leave a parameter out (an empty slice uses none of
        # the user-side weights); DDP then reduces a zero gradient for it instead of hanging.
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    def all_reduce_sum(self, values: list[float], device: str) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def all_agree(self, flag: bool) -> bool:
        """True when ``flag`` holds on every rank (e.g. each one sees the checkpoint)."""
        t = torch.tensor([1 if flag else 0], dtype=torch.int64)
        if self.backend == "nccl":
            t = t.to(self.device("cuda"))
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def barrier(self) -> None:
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.local_rank])
        else:
            dist.barrier()


def from_env(environ: Mapping[str, str] | None = None, device: str = "cpu") -> Distributed | None:
    """The torchrun variables, or None when this process was not started by a launcher."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return None
    try:
        world = int(env["WORLD_SIZE"])
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise SystemExit(f"recsys train: bad torchrun environment: {exc}") from None
    if world < 1 or not 0 <= rank < world:
        raise SystemExit(f"recsys train: RANK={rank} is outside WORLD_SIZE={world}")
    return Distributed(rank, world, local, "nccl" if device.startswith("cuda") else "gloo")


def init(ctx: Distributed, timeout_s: float = 3600.0) -> None:
    """Join the process group (env:// rendezvous: MASTER_ADDR, MASTER_PORT). ``timeout_s``
    bounds every collective: rank 0 evaluates and writes the artifact while the others wait."""
    if ctx.backend == "nccl":
        torch.cuda.set_device(ctx.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(
            ctx.backend,
            rank=ctx.rank,
            world_size=ctx.world_size,
            timeout=dt.timedelta(seconds=timeout_s),
        )


def close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
