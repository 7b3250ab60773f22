"""Micro-batching: concurrent callers' items grouped into one forward pass.

Items that arrive while ``max_concurrency`` batches are running queue up and
form the next batch (up to ``max_size``) as soon as a slot frees: under load
the batches grow by themselves, and an idle batcher runs a lone item at once.
``max_wait_ms`` > 0 additionally holds a batch open that long after its first
item arrived (the bound on the added latency), unless ``max_size`` items are
waiting. ``max_concurrency`` = 1 suits one device; more keeps a remote server
like Triton busy. Each caller gets its own result back,
or the batch's exception. A full queue raises :class:`QueueFull` (the service
maps it to RESOURCE_EXHAUSTED). :meth:`close` runs what is queued, then stops.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class QueueFull(Exception):
    """More items are waiting than ``max_queue``."""


class BatcherClosed(Exception):
    """The batcher was closed before the item was submitted."""


@dataclass
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    enqueued: float


@dataclass
class BatcherStats:
    batches: int = 0
    items: int = 0
    max_batch: int = 0


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R]]],
        *,
        max_size: int = 64,
        max_wait_ms: float = 2.0,
        max_queue: int = 4096,
        max_concurrency: int = 1,
    ) -> None:
        if max_size < 1 or max_wait_ms < 0 or max_queue < 1 or max_concurrency < 1:
            raise ValueError("max_size, max_queue, max_concurrency must be >= 1 and max_wait_ms >= 0")
        self._run = run
        self.max_size = max_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._pending: collections.deque[_Pending[T, R]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        self.stats = BatcherStats()

    def _ensure_worker(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._loop(), name="micro-batcher")

    async def submit(self, item: T) -> R:
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        """Queue ``items`` (they may be split across batches) and return their results in order."""
        if self._closing:
            raise BatcherClosed("the model is being unloaded")
        if len(self._pending) + len(items) > self.max_queue:
            raise QueueFull(f"{len(self._pending)} items waiting (max {self.max_queue})")
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        now = loop.time()
        futures: list[asyncio.Future[R]] = []
        for it in items:
            fut: asyncio.Future[R] = loop.create_future()
            self._pending.append(_Pending(it, fut, now))
            futures.append(fut)
        self._wakeup.set()
        return list(await asyncio.gather(*futures))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._slots.acquire()
            deadline = self._pending[0].enqueued + self.max_wait
            while len(self._pending) < self.max_size and not self._closing:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
            batch = [self._pending.popleft() for _ in range(min(self.max_size, len(self._pending)))]
            task = loop.create_task(self._run_batch(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, batch: list[_Pending[T, R]]) -> None:
        try:
            live = [p for p in batch if not p.future.done()]  # callers cancelled meanwhile are skipped
            if not live:
                return
            self.stats.batches += 1
            self.stats.items += len(live)
            self.stats.max_batch = max(self.stats.max_batch, len(live))
            try:
                results = await self._run([p.item for p in live])
                if len(results) != len(live):
                    raise RuntimeError(
                        f"batch function returned {len(results)} results for {len(live)} items"
                    )
            except Exception as exc:
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(exc)
                return
            for p, r in zip(live, results, strict=True):
                if not p.future.done():
                    p.future.set_result(r)
        finally:
            self._slots.release()

    @property
    def queued(self) -> int:
        return len(self._pending)

    async def close(self) -> None:
        """Stop accepting items, run the queued ones, wait for running batches."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
