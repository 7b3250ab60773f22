"""One micro-batcher for every hop (issues #15, #17): concurrent callers' items merged into batch calls.

``Batcher.submit(key, item)`` (or ``submit_many(key, items)``) queues items under ``key``; items of
one key leave together in one call of the batch function ``run(key, items, deadlines)``, which
returns one result per item, in order. The gateway merges its callers' upstream calls with it, the
embedder its signals into one forward pass, the retriever its searches into one Milvus call; each
states its policy through the options:

- ``max_in_flight``: batch calls running at once (None = no limit). What arrives while every slot
  is busy queues and leaves as soon as a slot frees, so batches grow with the load ("natural
  batching");
- ``max_wait_s`` > 0: a batch is *due* that long after its first item arrived (a timer); it leaves
  when it is due or full, once a slot is free. While every slot is busy a due batch stays open and
  keeps collecting items. 0 = due at once (no timer);
- ``idle_send``: an item that finds nothing in flight and nothing queued is sent at once, alone,
  without waiting for the timer (a lone caller pays no wait);
- ``defer_send``: an arrival does not send at once but on the event loop's next step, so items
  submitted in the same step (concurrent RPCs the server started together) leave together;
- a batch holds at most ``max_items`` items and, given ``weight``, at most ``max_weight`` of their
  weight (its first item alone may weigh more); it is *full* when the next item does not fit (or
  it reached either cap). Items are queued per key, in order, and never split;
- which key a freed slot serves: the key whose oldest item waited longest; with ``full_first``,
  full batches first (in the order they filled), then the due batch whose first item is oldest;
- ``keep_cancelled``: a cancelled caller's item keeps its place (and counts toward the caps) in
  the batch it was queued into, so batches are the ones formed as items arrived; without it the
  item is dropped as the batch is formed and the next items move up. Either way a cancelled caller
  drops only its own result, and a batch whose callers are all gone is not sent;
- ``max_queue`` (0 = none): more items queued than that raises :class:`QueueFull`;
- the batch function's exception reaches every item of the batch (``Batcher`` never retries);
  a result count that does not match is a ``RuntimeError`` for all of them;
- :meth:`aclose` refuses new items (:class:`BatcherClosed`), sends what is queued at once (timers
  no longer wait; within the slots, or all at once with ``at_once``) and waits for the calls.

The batch runs in its own task with the context of whatever started it (a submitter, a timer or a
finished call); it is given the items' deadlines (absolute ``time.monotonic()`` values, None = none)
so it can use the latest of them, and it must not rely on context variables of any one request.
A slot is freed before the callers of its batch get their results, so the next batch leaves first.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

#: (key, items, their deadlines) -> one result per item
BatchFn = Callable[[K, list[T], list[float | None]], Awaitable[Sequence[R]]]


class QueueFull(Exception):
    """More items would be queued than ``max_queue``."""


class BatcherClosed(Exception):
    """The batcher is closing or closed: it takes no new items."""


@dataclass(eq=False)
class _Entry(Generic[T, R]):
    item: T
    deadline: float | None
    future: asyncio.Future[R]
    weight: int
    seq: int
    enqueued: float


@dataclass(eq=False)
class _Queue(Generic[T, R]):
    """The items of one key; the first batch's (the head's) timer and due flag."""

    entries: deque[_Entry[T, R]] = field(default_factory=deque)
    due: bool = False
    timer: asyncio.TimerHandle | None = None


@dataclass
class BatcherStats:
    submitted: int = 0  # items submitted
    batches: int = 0  # batch calls made
    items: int = 0  # items they carried (cancelled ones excluded)
    weight: int = 0  # and their total weight
    max_batch: int = 0

    @property
    def mean_batch(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class Batcher(Generic[K, T, R]):
    def __init__(
        self,
        run: BatchFn[K, T, R],
        *,
        max_items: int,
        max_in_flight: int | None = 1,
        max_wait_s: float = 0.0,
        idle_send: bool = False,
        defer_send: bool = False,
        weight: Callable[[T], int] | None = None,
        max_weight: int = 0,
        full_first: bool = False,
        keep_cancelled: bool = False,
        max_queue: int = 0,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_items < 1 or (max_in_flight is not None and max_in_flight < 1):
            raise ValueError("max_items and max_in_flight must be >= 1 (max_in_flight None = no limit)")
        if max_wait_s < 0 or max_weight < 0 or max_queue < 0:
            raise ValueError("max_wait_s, max_weight and max_queue must be >= 0")
        self._run = run
        self.max_items = max_items
        self.max_in_flight = max_in_flight
        self.max_wait_s = max_wait_s
        self.idle_send = idle_send
        self.defer_send = defer_send
        self._weight = weight
        self.max_weight = max_weight
        self.full_first = full_first
        self.keep_cancelled = keep_cancelled
        self.max_queue = max_queue
        self._queues: dict[K, _Queue[T, R]] = {}
        self._queued = 0
        self._in_flight = 0
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._soon: asyncio.Handle | None = None
        self._closed = False
        self.stats = BatcherStats()
        #: told the item count of every batch sent (e.g. a batch-size histogram)
        self._on_batch = on_batch

    # ---------------------------------------------------------------- state
    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def queued(self) -> int:
        """Items waiting for a batch call (cancelled ones not yet dropped included)."""
        return self._queued

    @property
    def idle(self) -> bool:
        """Nothing in flight, nothing queued: an item now has no one to share a call with."""
        return self._in_flight == 0 and not self._queues

    @property
    def closed(self) -> bool:
        return self._closed

    def _slot_free(self) -> bool:
        return self.max_in_flight is None or self._in_flight < self.max_in_flight

    # ---------------------------------------------------------------- submit
    async def submit(self, key: K, item: T, deadline: float | None = None) -> R:
        """The result of ``item`` (sent alone or with others of ``key``)."""
        (fut,) = self._enqueue(key, [item], deadline)
        return await fut

    async def submit_many(self, key: K, items: Sequence[T], deadline: float | None = None) -> list[R]:
        """The results of ``items``, in order (they may leave in several batches)."""
        futures = self._enqueue(key, items, deadline)
        return list(await asyncio.gather(*futures))

    def _enqueue(self, key: K, items: Sequence[T], deadline: float | None) -> list[asyncio.Future[R]]:
        if self._closed:
            raise BatcherClosed("the batcher is closed")
        if self.max_queue and self._queued + len(items) > self.max_queue:
            raise QueueFull(f"{self._queued} items waiting (max {self.max_queue})")
        loop = asyncio.get_running_loop()
        idle = self.idle
        now = loop.time()
        q = self._queues.get(key)
        new = q is None
        if q is None:
            q = self._queues[key] = _Queue()
        futures: list[asyncio.Future[R]] = []
        for it in items:
            fut: asyncio.Future[R] = loop.create_future()
            w = self._weight(it) if self._weight is not None else 0
            q.entries.append(_Entry(it, deadline, fut, w, next(self._seq), now))
            futures.append(fut)
        self._queued += len(items)
        self.stats.submitted += len(items)
        if new:
            self._arm(q)
            if self.idle_send and idle:
                q.due = True
        if self.defer_send:
            if self._soon is None:
                self._soon = loop.call_soon(self._pump_soon)
        else:
            self._pump()
        return futures

    # ---------------------------------------------------------------- forming batches
    def _arm(self, q: _Queue[T, R]) -> None:
        """Set the due flag and the timer of ``q``'s head batch (its first item changed)."""
        if q.timer is not None:
            q.timer.cancel()
            q.timer = None
        q.due = self.max_wait_s == 0 or self._closed
        if q.due or not q.entries:
            return
        loop = asyncio.get_running_loop()
        at = q.entries[0].enqueued + self.max_wait_s
        if at <= loop.time():
            q.due = True
        else:
            q.timer = loop.call_at(at, self._on_timer, q)

    def _on_timer(self, q: _Queue[T, R]) -> None:
        q.timer = None
        q.due = True
        self._pump()

    def _pump_soon(self) -> None:
        self._soon = None
        self._pump()

    def _head(self, q: _Queue[T, R]) -> tuple[int, int | None]:
        """(entries the head batch takes, seq of the entry that made it full or None)."""
        count = weight = 0
        full_at: int | None = None
        for i, e in enumerate(q.entries):
            if count >= self.max_items:
                return i, full_at
            if not self.keep_cancelled and e.future.done():
                continue  # dropped with the batch, not counted
            if count and self.max_weight and weight + e.weight > self.max_weight:
                return i, e.seq if full_at is None else full_at  # e does not fit: full
            count += 1
            weight += e.weight
            capped = count >= self.max_items or (self.max_weight and weight >= self.max_weight)
            if full_at is None and capped:
                full_at = e.seq
        return len(q.entries), full_at

    def _pick(self) -> tuple[K] | None:
        """(the key a free slot serves,), or None when no batch is ready (None may be a key)."""
        best: tuple[K] | None = None
        rank: tuple[int, int] | None = None
        for key, q in self._queues.items():
            if self.full_first:
                _, sealer = self._head(q)
                if sealer is not None:
                    r = (0, sealer)
                elif q.due:
                    r = (1, q.entries[0].seq)
                else:
                    continue
            elif q.due or self._head(q)[1] is not None:
                r = (0, q.entries[0].seq)
            else:
                continue
            if rank is None or r < rank:
                best, rank = (key,), r
        return best

    def _pop_head(self, key: K) -> list[_Entry[T, R]]:
        q = self._queues[key]
        n, _ = self._head(q)
        batch = [q.entries.popleft() for _ in range(n)]
        self._queued -= n
        if q.entries:
            self._arm(q)
        else:
            if q.timer is not None:
                q.timer.cancel()
            del self._queues[key]
        return batch

    def _pump(self) -> None:
        while self._slot_free() and self._queues:
            picked = self._pick()
            if picked is None:
                return
            (key,) = picked
            self._launch(key, self._pop_head(key))

    def _launch(self, key: K, batch: list[_Entry[T, R]]) -> None:
        live = [e for e in batch if not e.future.done()]  # callers gone meanwhile are skipped
        if not live:
            return
        self._in_flight += 1
        self.stats.batches += 1
        self.stats.items += len(live)
        self.stats.weight += sum(e.weight for e in live)
        self.stats.max_batch = max(self.stats.max_batch, len(live))
        if self._on_batch is not None:
            self._on_batch(len(live))
        task = asyncio.get_running_loop().create_task(self._execute(key, live))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- running a batch
    async def _execute(self, key: K, batch: list[_Entry[T, R]]) -> None:
        released = False

        def release() -> None:
            # The slot is freed before the callers wake, so the next batch leaves at once.
            nonlocal released
            if not released:
                released = True
                self._in_flight -= 1
                self._pump()

        try:
            results = await self._run(key, [e.item for e in batch], [e.deadline for e in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(batch)} items")
        except asyncio.CancelledError:
            release()
            for e in batch:
                e.future.cancel()
            raise
        except Exception as exc:  # every item of the batch gets the same failure
            release()
            for e in batch:
                if not e.future.done():
                    e.future.set_exception(exc)
            return
        release()
        for e, r in zip(batch, results, strict=True):
            if not e.future.done():
                e.future.set_result(r)

    async def aclose(self, *, at_once: bool = False) -> None:
        """Take no new items; send what is queued without waiting for timers (within the slots,
        or every batch now with ``at_once``); wait for the batch calls in flight."""
        self._closed = True
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        for q in self._queues.values():
            self._arm(q)  # due now
        if at_once:
            while self._queues:
                key = next(iter(self._queues))
                self._launch(key, self._pop_head(key))
        self._pump()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


__all__ = ["BatchFn", "Batcher", "BatcherClosed", "BatcherStats", "QueueFull"]
