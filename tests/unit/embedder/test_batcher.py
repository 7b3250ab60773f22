"""The embedder's micro-batcher (``service.new_batcher``, recsys_core.batching): every caller gets its
own result; batches group; errors and limits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from recsys_core.batching import Batcher, BatcherClosed, QueueFull
from recsys_embedder.service import new_batcher


def micro_batcher(
    run: Callable[[list[Any]], Awaitable[Sequence[Any]]],
    *,
    max_size: int = 64,
    max_wait_ms: float = 2.0,
    max_queue: int = 4096,
    max_concurrency: int = 1,
) -> Batcher[None, Any, Any]:
    """The batcher the embedder builds for a model, around a batch function of the items only."""

    async def batch(key: None, items: list[Any], deadlines: list[float | None]) -> Sequence[Any]:
        return await run(items)

    return new_batcher(batch, max_size, max_wait_ms, max_queue, max_concurrency)


async def test_each_caller_gets_its_own_result_under_concurrency() -> None:
    sizes: list[int] = []

    async def run(items: list[int]) -> list[int]:
        sizes.append(len(items))
        await asyncio.sleep(0.001)
        return [i * 10 for i in items]

    b: Batcher[None, int, int] = micro_batcher(run, max_size=16, max_wait_ms=20)
    results = await asyncio.gather(*(b.submit(None, i) for i in range(100)))
    assert results == [i * 10 for i in range(100)]
    assert max(sizes) > 1  # requests were grouped
    assert max(sizes) <= 16
    assert sum(sizes) == 100
    await b.aclose()


async def test_submit_many_keeps_order_across_batches() -> None:
    async def run(items: list[str]) -> list[str]:
        return [s.upper() for s in items]

    b: Batcher[None, str, str] = micro_batcher(run, max_size=3, max_wait_ms=1)
    words = [f"w{i}" for i in range(10)]
    assert await b.submit_many(None, words) == [w.upper() for w in words]
    await b.aclose()


async def test_a_lone_caller_waits_at_most_max_wait() -> None:
    calls: list[int] = []

    async def run(items: list[int]) -> list[int]:
        calls.append(len(items))
        return items

    b: Batcher[None, int, int] = micro_batcher(run, max_size=64, max_wait_ms=0)
    assert await b.submit(None, 7) == 7
    assert calls == [1]
    await b.aclose()


async def test_batch_error_goes_to_every_caller_of_that_batch() -> None:
    async def run(items: list[int]) -> list[int]:
        if any(i < 0 for i in items):
            raise ValueError("negative")
        return items

    b: Batcher[None, int, int] = micro_batcher(run, max_size=8, max_wait_ms=5)
    res = await asyncio.gather(b.submit(None, 1), b.submit(None, -1), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in res)
    assert await b.submit(None, 3) == 3  # the batcher keeps working
    await b.aclose()


async def test_wrong_result_count_is_an_error() -> None:
    async def run(items: list[int]) -> list[int]:
        return items[:-1]

    b: Batcher[None, int, int] = micro_batcher(run, max_size=4, max_wait_ms=0)
    with pytest.raises(RuntimeError, match="results"):
        await b.submit(None, 1)
    await b.aclose()


async def test_queue_full_and_closed() -> None:
    gate = asyncio.Event()

    async def run(items: list[int]) -> list[int]:
        await gate.wait()
        return items

    b: Batcher[None, int, int] = micro_batcher(run, max_size=2, max_wait_ms=0, max_queue=4)
    first = asyncio.ensure_future(b.submit_many(None, [1, 2]))
    await asyncio.sleep(0.01)  # the first batch is running, the queue is empty again
    waiting = asyncio.ensure_future(b.submit_many(None, [3, 4, 5, 6]))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull):
        await b.submit(None, 7)
    gate.set()
    assert await first == [1, 2]
    assert await waiting == [3, 4, 5, 6]
    closing = asyncio.ensure_future(b.aclose())
    await closing
    with pytest.raises(BatcherClosed):
        await b.submit(None, 8)


async def test_close_runs_what_is_queued() -> None:
    async def run(items: list[int]) -> list[int]:
        await asyncio.sleep(0.005)
        return items

    b: Batcher[None, int, int] = micro_batcher(run, max_size=2, max_wait_ms=50)
    pending = [asyncio.ensure_future(b.submit(None, i)) for i in range(5)]
    await asyncio.sleep(0)
    await b.aclose()
    assert [p.result() for p in pending] == list(range(5))


def test_bad_parameters() -> None:
    async def run(items: list[int]) -> list[int]:
        return items

    with pytest.raises(ValueError):
        micro_batcher(run, max_size=0)
