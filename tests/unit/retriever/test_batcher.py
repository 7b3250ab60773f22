"""The retriever's micro-batching (``RetrieverService`` on recsys_core.batching): merging, size and
time bounds, error propagation, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import numpy as np
import pytest
from recsys_retriever.service import RawHits, RetrieverService


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Hashable, int]] = []
        self.fail = fail
        self.gate: asyncio.Event | None = None

    async def __call__(self, key: Hashable, vectors: np.ndarray) -> list[float]:
        self.calls.append((key, int(vectors.shape[0])))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("boom")
        return [float(v[0]) for v in vectors]  # echo the first value of each row


def rows(*values: float) -> np.ndarray:
    return np.array([[v, 0.0] for v in values], dtype=np.float32)


class _NoStore:
    async def close(self) -> None:
        pass


class Batcher:
    """The retriever's batching of searches, as ``RetrieverService`` configures it (the Milvus call
    replaced by ``run``); ``idle_send`` is on in the service and off here unless asked for."""

    def __init__(
        self,
        run: Recorder,
        max_size: int,
        max_wait_s: float,
        max_inflight: int = 0,
        *,
        idle_send: bool = False,
    ) -> None:
        self.svc = RetrieverService(
            _NoStore(),  # type: ignore[arg-type]  # searches go to ``run``
            batch_max_size=max_size,
            batch_max_wait_s=max_wait_s,
            batch_max_inflight=max_inflight,
        )
        assert self.svc.batcher.idle_send
        self.svc.batcher.idle_send = idle_send

        async def search(key: object, vectors: np.ndarray) -> list[RawHits]:
            return await run(key, vectors)  # type: ignore[return-value]

        self.svc._run_batch = search  # type: ignore[assignment,method-assign]
        self.stats = self.svc.batcher.stats
        self.enabled = self.svc.batching

    async def submit(self, key: Hashable, vectors: np.ndarray) -> list[float]:
        return await self.svc._search_rows(key, vectors)  # type: ignore[arg-type,return-value]

    async def aclose(self) -> None:
        await self.svc.close()


async def test_concurrent_requests_with_the_same_key_share_one_call() -> None:
    rec = Recorder()
    b: Batcher[float] = Batcher(rec, max_size=64, max_wait_s=0.05)
    out = await asyncio.gather(*(b.submit("k", rows(i, i + 0.5)) for i in range(10)))
    assert out == [[float(i), i + 0.5] for i in range(10)]
    assert rec.calls == [("k", 20)]
    assert b.stats.batches == 1 and b.stats.weight == 20 and b.stats.submitted == 10


async def test_different_keys_are_never_merged() -> None:
    rec = Recorder()
    b: Batcher[float] = Batcher(rec, max_size=64, max_wait_s=0.05)
    out = await asyncio.gather(b.submit("a", rows(1)), b.submit("b", rows(2)), b.submit("a", rows(3)))
    assert out == [[1.0], [2.0], [3.0]]
    assert sorted(rec.calls) == [("a", 2), ("b", 1)]


async def test_a_full_batch_is_sent_without_waiting_for_the_timer() -> None:
    rec = Recorder()
    b: Batcher[float] = Batcher(rec, max_size=4, max_wait_s=3600)  # the timer would never fire in time
    out = await asyncio.wait_for(asyncio.gather(*(b.submit("k", rows(i)) for i in range(8))), timeout=30)
    assert [o[0] for o in out] == [float(i) for i in range(8)]
    assert rec.calls == [("k", 4), ("k", 4)]


async def test_a_batch_never_exceeds_max_size() -> None:
    rec = Recorder()
    b: Batcher[float] = Batcher(rec, max_size=5, max_wait_s=0.01)
    out = await asyncio.gather(
        b.submit("k", rows(1, 2, 3)), b.submit("k", rows(4, 5, 6)), b.submit("k", rows(7))
    )
    assert out == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0]]
    assert all(n <= 5 for _, n in rec.calls)
    assert sum(n for _, n in rec.calls) == 7


async def test_a_large_request_goes_alone_and_disabled_batching_calls_directly() -> None:
    rec = Recorder()
    b: Batcher[float] = Batcher(rec, max_size=2, max_wait_s=0.01)
    assert await b.submit("k", rows(1, 2, 3)) == [1.0, 2.0, 3.0]
    off: Batcher[float] = Batcher(rec, max_size=64, max_wait_s=0)
    assert not off.enabled
    await asyncio.gather(off.submit("k", rows(1)), off.submit("k", rows(2)))
    assert rec.calls == [("k", 3), ("k", 1), ("k", 1)]


async def test_a_failed_call_fails_every_request_in_it() -> None:
    rec = Recorder(fail=True)
    b: Batcher[float] = Batcher(rec, max_size=64, max_wait_s=0.01)
    out = await asyncio.gather(b.submit("k", rows(1)), b.submit("k", rows(2)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in out)
    assert len(rec.calls) == 1


async def test_a_cancelled_waiter_does_not_break_the_others() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b: Batcher[float] = Batcher(rec, max_size=64, max_wait_s=0.01)
    t1 = asyncio.create_task(b.submit("k", rows(1)))
    t2 = asyncio.create_task(b.submit("k", rows(2)))
    await asyncio.sleep(0.05)  # both are in the (blocked) call now
    t1.cancel()
    rec.gate.set()
    assert await t2 == [2.0]
    with pytest.raises(asyncio.CancelledError):
        await t1


async def test_aclose_flushes_waiting_requests() -> None:
    rec = Recorder()
    b: Batcher[float] = Batcher(rec, max_size=64, max_wait_s=3600)
    t = asyncio.create_task(b.submit("k", rows(9)))
    await asyncio.sleep(0)
    await b.aclose()
    assert await t == [9.0]


async def test_while_every_slot_is_busy_a_due_group_keeps_growing() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b: Batcher[float] = Batcher(rec, max_size=64, max_wait_s=0.01, max_inflight=1)
    first = asyncio.create_task(b.submit("k", rows(0)))
    await asyncio.sleep(0.05)  # timer fired, slot free: the first call is running (blocked)
    assert rec.calls == [("k", 1)]
    later = [asyncio.create_task(b.submit("k", rows(i))) for i in range(1, 11)]
    await asyncio.sleep(0.05)  # their timer fired too, but no slot: still one call
    assert rec.calls == [("k", 1)]
    rec.gate.set()
    assert await first == [0.0]
    assert [await t for t in later] == [[float(i)] for i in range(1, 11)]
    assert rec.calls == [("k", 1), ("k", 10)]


async def test_full_groups_wait_for_a_slot_and_go_first() -> None:
    rec = Recorder()
    rec.gate = asyncio.Event()
    b: Batcher[float] = Batcher(rec, max_size=2, max_wait_s=0.01, max_inflight=1)
    tasks = [asyncio.create_task(b.submit("a", rows(0)))]
    await asyncio.sleep(0.05)
    tasks.append(asyncio.create_task(b.submit("b", rows(1))))
    await asyncio.sleep(0.05)  # "b" is due
    tasks += [asyncio.create_task(b.submit("c", rows(i))) for i in (2, 3)]  # "c" full: sealed
    await asyncio.sleep(0.01)
    rec.gate.set()
    out = await asyncio.gather(*tasks)
    assert out == [[0.0], [1.0], [2.0], [3.0]]
    assert rec.calls == [("a", 1), ("c", 2), ("b", 1)]


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValueError):
        Batcher(Recorder(), max_size=0, max_wait_s=0.01)
    with pytest.raises(ValueError):
        Batcher(Recorder(), max_size=4, max_wait_s=-1)
    with pytest.raises(ValueError):
        Batcher(Recorder(), max_size=4, max_wait_s=0.01, max_inflight=-1)


async def test_idle_send_sends_a_lone_request_at_once_and_batches_behind_a_call_in_flight() -> None:
    rec = Recorder()
    b: Batcher[float] = Batcher(rec, max_size=64, max_wait_s=3600, idle_send=True)  # timer never fires
    assert await asyncio.wait_for(b.submit("k", rows(1)), timeout=1) == [1.0]
    assert await asyncio.wait_for(b.submit("k", rows(2)), timeout=1) == [2.0]
    assert rec.calls == [("k", 1), ("k", 1)]

    # while a call is in flight, later requests wait and merge (here: until the group is full)
    rec.gate = asyncio.Event()
    b2: Batcher[float] = Batcher(rec, max_size=4, max_wait_s=3600, idle_send=True)
    first = asyncio.ensure_future(b2.submit("k", rows(0)))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(b2.submit("k", rows(i))) for i in range(1, 5)]
    await asyncio.sleep(0.01)
    assert rec.calls[2:] == [("k", 1), ("k", 4)]  # the lone first one, then one merged call
    rec.gate.set()
    assert await first == [0.0]
    assert [await r for r in rest] == [[1.0], [2.0], [3.0], [4.0]]
    assert b2.stats.batches == 2 and b2.stats.submitted == 5


async def test_without_idle_send_a_lone_request_waits_for_the_timer() -> None:
    rec = Recorder()
    b: Batcher[float] = Batcher(rec, max_size=64, max_wait_s=0.05)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await b.submit("k", rows(1)) == [1.0]
    assert loop.time() - t0 >= 0.04
