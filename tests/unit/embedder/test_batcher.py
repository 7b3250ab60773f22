"""Micro-batching: every caller gets its own result; batches group; errors and limits."""

from __future__ import annotations

import asyncio

import pytest
from recsys_embedder.batcher import BatcherClosed, MicroBatcher, QueueFull


async def test_each_caller_gets_its_own_result_under_concurrency() -> None:
    sizes: list[int] = []

    async def run(items: list[int]) -> list[int]:
        sizes.append(len(items))
        await asyncio.sleep(0.001)
        return [i * 10 for i in items]

    b: MicroBatcher[int, int] = MicroBatcher(run, max_size=16, max_wait_ms=20)
    results = await asyncio.gather(*(b.submit(i) for i in range(100)))
    assert results == [i * 10 for i in range(100)]
    assert max(sizes) > 1  # requests were grouped
    assert max(sizes) <= 16
    assert sum(sizes) == 100
    await b.close()


async def test_submit_many_keeps_order_across_batches() -> None:
    async def run(items: list[str]) -> list[str]:
        return [s.upper() for s in items]

    b: MicroBatcher[str, str] = MicroBatcher(run, max_size=3, max_wait_ms=1)
    words = [f"w{i}" for i in range(10)]
    assert await b.submit_many(words) == [w.upper() for w in words]
    await b.close()


async def test_a_lone_caller_waits_at_most_max_wait() -> None:
    calls: list[int] = []

    async def run(items: list[int]) -> list[int]:
        calls.append(len(items))
        return items

    b: MicroBatcher[int, int] = MicroBatcher(run, max_size=64, max_wait_ms=0)
    assert await b.submit(7) == 7
    assert calls == [1]
    await b.close()


async def test_batch_error_goes_to_every_caller_of_that_batch() -> None:
    async def run(items: list[int]) -> list[int]:
        if any(i < 0 for i in items):
            raise ValueError("negative")
        return items

    b: MicroBatcher[int, int] = MicroBatcher(run, max_size=8, max_wait_ms=5)
    res = await asyncio.gather(b.submit(1), b.submit(-1), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in res)
    assert await b.submit(3) == 3  # the batcher keeps working
    await b.close()


async def test_wrong_result_count_is_an_error() -> None:
    async def run(items: list[int]) -> list[int]:
        return items[:-1]

    b: MicroBatcher[int, int] = MicroBatcher(run, max_size=4, max_wait_ms=0)
    with pytest.raises(RuntimeError, match="results"):
        await b.submit(1)
    await b.close()


async def test_queue_full_and_closed() -> None:
    gate = asyncio.Event()

    async def run(items: list[int]) -> list[int]:
        await gate.wait()
        return items

    b: MicroBatcher[int, int] = MicroBatcher(run, max_size=2, max_wait_ms=0, max_queue=4)
    first = asyncio.ensure_future(b.submit_many([1, 2]))
    await asyncio.sleep(0.01)  # the first batch is running, the queue is empty again
    waiting = asyncio.ensure_future(b.submit_many([3, 4, 5, 6]))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull):
        await b.submit(7)
    gate.set()
    assert await first == [1, 2]
    assert await waiting == [3, 4, 5, 6]
    closing = asyncio.ensure_future(b.close())
    await closing
    with pytest.raises(BatcherClosed):
        await b.submit(8)


async def test_close_runs_what_is_queued() -> None:
    async def run(items: list[int]) -> list[int]:
        await asyncio.sleep(0.005)
        return items

    b: MicroBatcher[int, int] = MicroBatcher(run, max_size=2, max_wait_ms=50)
    pending = [asyncio.ensure_future(b.submit(i)) for i in range(5)]
    await asyncio.sleep(0)
    await b.close()
    assert [p.result() for p in pending] == list(range(5))


def test_bad_parameters() -> None:
    async def run(items: list[int]) -> list[int]:
        return items

    with pytest.raises(ValueError):
        MicroBatcher(run, max_size=0)
