"""Coalescing of concurrent calls into batch calls, for a client of a batch RPC (issue #15).

Many in-flight requests each need one item from the same upstream (a user's history, a query
vector, a search): ``Coalescer.submit(key, item)`` merges the items submitted while the
upstream is busy into one batch call per key.

Policy ("natural batching", no timer):
- at most ``max_in_flight`` batch calls run at once. An item that finds a free slot is sent at
  once (a lone caller pays no wait at all); items that arrive while every slot is busy queue
  and leave together, up to ``max_items`` (and ``max_weight``, if given) per call, as soon as
  a slot frees. So batches grow with the load and the added wait is at most one call's time;
- items are grouped by ``key`` (a call carries one key: e.g. the search's k and filter); a freed
  slot takes the key whose oldest item waited longest;
- the batch function returns one result per item, in order; its exception reaches every item
  of the batch. ``Coalescer`` never retries: what a failed batch means for its items is the
  caller's rule (the gateway retries caller errors item by item, see recsys_gateway.batching);
- a cancelled caller drops only its own result; a batch whose callers are all gone is not sent;
- the batch runs in its own task with the context of the submitter that started it; it is given
  the items' deadlines (absolute ``time.monotonic()`` values, None = none) so it can use the
  latest of them, and it must not rely on context variables of any one request.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

#: (key, items, their deadlines) -> one result per item
BatchFn = Callable[[K, list[T], list[float | None]], Awaitable[Sequence[R]]]


@dataclass
class _Pending(Generic[T, R]):
    item: T
    deadline: float | None
    future: asyncio.Future[R]
    weight: int
    seq: int


@dataclass
class CoalescerStats:
    calls: int = 0
    items: int = 0
    max_batch: int = 0

    @property
    def mean_batch(self) -> float:
        return self.items / self.calls if self.calls else 0.0


class Coalescer(Generic[K, T, R]):
    def __init__(
        self,
        run: BatchFn[K, T, R],
        *,
        max_items: int,
        max_in_flight: int,
        weight: Callable[[T], int] | None = None,
        max_weight: int = 0,
    ) -> None:
        if max_items < 1 or max_in_flight < 1 or max_weight < 0:
            raise ValueError("max_items and max_in_flight must be >= 1, max_weight >= 0")
        self._run = run
        self.max_items = max_items
        self.max_in_flight = max_in_flight
        self._weight = weight
        self.max_weight = max_weight
        self._queues: dict[K, deque[_Pending[T, R]]] = {}
        self._in_flight = 0
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = CoalescerStats()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    async def submit(self, key: K, item: T, deadline: float | None = None) -> R:
        """The result of ``item`` (sent alone or with others of ``key``)."""
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        w = self._weight(item) if self._weight is not None else 0
        self._queues.setdefault(key, deque()).append(_Pending(item, deadline, fut, w, next(self._seq)))
        self._pump()
        return await fut

    def _pump(self) -> None:
        while self._in_flight < self.max_in_flight and self._queues:
            key = min(self._queues, key=lambda k: self._queues[k][0].seq)  # oldest waiting item
            queue = self._queues[key]
            batch: list[_Pending[T, R]] = []
            weight = 0
            while queue and len(batch) < self.max_items:
                p = queue[0]
                if p.future.done():  # its caller is gone
                    queue.popleft()
                    continue
                if batch and self.max_weight and weight + p.weight > self.max_weight:
                    break
                batch.append(queue.popleft())
                weight += p.weight
            if not queue:
                del self._queues[key]
            if not batch:
                continue
            self._in_flight += 1
            self.stats.calls += 1
            self.stats.items += len(batch)
            self.stats.max_batch = max(self.stats.max_batch, len(batch))
            task = asyncio.get_running_loop().create_task(self._execute(key, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _execute(self, key: K, batch: list[_Pending[T, R]]) -> None:
        released = False

        def release() -> None:
            # The slot is freed before the callers wake, so the next batch leaves at once.
            nonlocal released
            if not released:
                released = True
                self._in_flight -= 1
                self._pump()

        try:
            results = await self._run(key, [p.item for p in batch], [p.deadline for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
        except asyncio.CancelledError:
            release()
            for p in batch:
                p.future.cancel()
            raise
        except Exception as exc:  # every item of the batch gets the same failure
            release()
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        release()
        for p, r in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(r)

    async def aclose(self) -> None:
        """Wait for the batch calls in flight (and those they release)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


__all__ = ["BatchFn", "Coalescer", "CoalescerStats"]
