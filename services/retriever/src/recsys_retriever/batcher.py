"""Micro-batching of concurrent searches into one Milvus call.

A Milvus search costs far more per call than per query (Milvus Lite at 4k vectors: ~6 ms for
one query, ~0.4 ms a query in a batch of 64), so concurrent Search RPCs that hit the same
collection with the same filter expression and limit are merged into one call.

Policy:
- the first query of a group starts a timer of ``max_wait_s``; the group is *due* when the timer
  fires and *full* at ``max_size`` queries (a full group is sealed; later queries start a new one);
- at most ``max_inflight`` merged calls run at once (0 = no limit). A due or full group is sent as
  soon as a call slot is free; while every slot is busy a due group stays open and keeps
  collecting queries, so batches grow with the load (what a busy Milvus needs) instead of many
  small calls competing for it. When a slot frees, sealed full groups go first, then the oldest
  due group;
- a request that alone has ``max_size`` queries or more is sent at once, unmerged, outside the
  slots;
- ``max_wait_s == 0`` (or ``max_size <= 1``) disables batching: every request is sent at once;
- ``idle_send``: a request that finds nothing in flight and nothing waiting is sent at once
  (there is no call to share and no queue to avoid: waiting ``max_wait_s`` would only add
  latency, which is what a lone caller, or a Recommend whose exclusion filter is its own, saw).
  Batching then starts as soon as one call is in flight, so it still grows with the load.

So when Milvus keeps up, a query waits at most ``max_wait_s`` before its call starts; beyond that
it waits for a call slot, which is queueing that would otherwise happen inside Milvus. Results
are split back per request in order; a failure of the merged call fails every request in it with
that error. Cancelling a waiting request drops only its own result.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

R = TypeVar("R")

# (key, stacked query vectors (n, d)) -> one result per row
RunFn = Callable[[Hashable, np.ndarray], Awaitable[list[R]]]


@dataclass
class _Group(Generic[R]):
    key: Hashable
    seq: int
    parts: list[tuple[np.ndarray, asyncio.Future[list[R]]]] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None
    due: bool = False


@dataclass
class BatcherStats:
    calls: int = 0
    queries: int = 0
    requests: int = 0

    @property
    def mean_batch(self) -> float:
        return self.queries / self.calls if self.calls else 0.0


class Batcher(Generic[R]):
    def __init__(
        self,
        run: RunFn[R],
        max_size: int,
        max_wait_s: float,
        max_inflight: int = 0,
        *,
        idle_send: bool = False,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        if max_inflight < 0:
            raise ValueError("max_inflight must be >= 0")
        self._run = run
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.max_inflight = max_inflight
        self.idle_send = idle_send
        self._open: dict[Hashable, _Group[R]] = {}  # accepting queries
        self._sealed: deque[_Group[R]] = deque()  # full, waiting for a slot
        self._inflight = 0
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = BatcherStats()

    @property
    def enabled(self) -> bool:
        return self.max_wait_s > 0 and self.max_size > 1

    @property
    def idle(self) -> bool:
        """Nothing in flight, nothing sealed, no group open: a request now has no one to share
        a call with (and, with ``idle_send``, is sent at once)."""
        return self._idle()

    def _idle(self) -> bool:
        """Nothing in flight, nothing sealed, no group open: a request now has no one to wait for."""
        return self._inflight == 0 and not self._sealed and not self._open

    def _slot_free(self) -> bool:
        return self.max_inflight == 0 or self._inflight < self.max_inflight

    async def submit(self, key: Hashable, vectors: np.ndarray) -> list[R]:
        """Search ``vectors`` (n, d) under ``key``; returns one result per row, in order."""
        n = int(vectors.shape[0])
        self.stats.requests += 1
        if not self.enabled or n >= self.max_size:
            self._count(n)
            return await self._run(key, vectors)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[R]] = loop.create_future()
        if self.idle_send and self._idle():
            self._dispatch(_Group(key, next(self._seq), parts=[(vectors, fut)], size=n))
            return await fut
        group = self._open.get(key)
        if group is not None and group.size + n > self.max_size:
            self._seal(group)  # would overflow: it goes as it is, a new group starts
            group = None
        if group is None:
            group = _Group(key, next(self._seq))
            self._open[key] = group
            group.timer = loop.call_later(self.max_wait_s, self._on_timer, group)
        group.parts.append((vectors, fut))
        group.size += n
        if group.size >= self.max_size:
            self._seal(group)
        return await fut

    def _count(self, n: int) -> None:
        self.stats.calls += 1
        self.stats.queries += n

    def _close(self, group: _Group[R]) -> None:
        if self._open.get(group.key) is group:
            del self._open[group.key]
        if group.timer is not None:
            group.timer.cancel()
            group.timer = None

    def _seal(self, group: _Group[R]) -> None:
        self._close(group)
        if self._slot_free():
            self._dispatch(group)
        else:
            self._sealed.append(group)

    def _on_timer(self, group: _Group[R]) -> None:
        group.timer = None
        if self._open.get(group.key) is not group:
            return
        if self._slot_free():
            self._close(group)
            self._dispatch(group)
        else:
            group.due = True  # stays open, keeps collecting until a slot frees

    def _next(self) -> None:
        while self._slot_free():
            if self._sealed:
                self._dispatch(self._sealed.popleft())
                continue
            due = [g for g in self._open.values() if g.due]
            if not due:
                return
            group = min(due, key=lambda g: g.seq)
            self._close(group)
            self._dispatch(group)

    def _dispatch(self, group: _Group[R]) -> None:
        parts = [(v, f) for v, f in group.parts if not f.cancelled()]
        if not parts:
            return
        self._count(sum(int(v.shape[0]) for v, _ in parts))
        self._inflight += 1
        slot = [True]  # held until the call returns (released before the waiters wake up)
        task = asyncio.get_running_loop().create_task(self._execute(group.key, parts, slot))
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, slot))

    def _release(self, slot: list[bool]) -> None:
        if slot[0]:
            slot[0] = False
            self._inflight -= 1
            self._next()

    def _done(self, task: asyncio.Task[None], slot: list[bool]) -> None:
        self._tasks.discard(task)
        self._release(slot)  # a task cancelled before it ran

    async def _execute(
        self, key: Hashable, parts: list[tuple[np.ndarray, asyncio.Future[list[R]]]], slot: list[bool]
    ) -> None:
        # The slot is released before the waiters get their results, so a caller that sends its
        # next request as soon as it has this answer finds the batcher idle (``idle``).
        stacked = parts[0][0] if len(parts) == 1 else np.concatenate([v for v, _ in parts], axis=0)
        try:
            results = await self._run(key, stacked)
        except asyncio.CancelledError:
            self._release(slot)
            for _, fut in parts:
                fut.cancel()
            raise
        except Exception as exc:  # hand every waiter the same failure
            self._release(slot)
            for _, fut in parts:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self._release(slot)
        offset = 0
        for v, fut in parts:
            n = int(v.shape[0])
            if not fut.done():
                fut.set_result(results[offset : offset + n])
            offset += n

    async def aclose(self) -> None:
        """Send whatever is waiting (ignoring the slot limit) and wait for the calls in flight."""
        for group in list(self._open.values()):
            self._close(group)
            self._sealed.append(group)
        while self._sealed:
            self._dispatch(self._sealed.popleft())
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
