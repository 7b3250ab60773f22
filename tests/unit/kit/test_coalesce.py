"""recsys_core.coalesce: concurrent items merged into batch calls (natural batching)."""

from __future__ import annotations

import asyncio

import pytest
from recsys_core.coalesce import Coalescer


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[object, list[int], list[float | None]]] = []
        self.delay = delay
        self.fail: set[int] = set()

    async def run(self, key: object, items: list[int], deadlines: list[float | None]) -> list[int]:
        self.calls.append((key, list(items), list(deadlines)))
        await asyncio.sleep(self.delay)
        if self.fail & set(items):
            raise ValueError(f"bad item in {items}")
        return [i * 10 for i in items]


async def test_an_idle_coalescer_sends_at_once_and_alone() -> None:
    r = Recorder()
    c: Coalescer[str, int, int] = Coalescer(r.run, max_items=8, max_in_flight=1)
    assert await c.submit("k", 3) == 30
    assert await c.submit("k", 4) == 40
    assert [items for _, items, _ in r.calls] == [[3], [4]]


async def test_items_arriving_while_a_call_is_out_leave_together() -> None:
    r = Recorder(delay=0.01)
    c: Coalescer[str, int, int] = Coalescer(r.run, max_items=8, max_in_flight=1)
    out = await asyncio.gather(*(c.submit("k", i) for i in range(1, 6)))
    assert out == [10, 20, 30, 40, 50]  # each caller its own result, in order
    assert [items for _, items, _ in r.calls] == [[1], [2, 3, 4, 5]]
    assert c.stats.calls == 2 and c.stats.max_batch == 4


async def test_max_items_max_weight_and_keys_bound_a_call() -> None:
    r = Recorder(delay=0.01)
    c: Coalescer[str, int, int] = Coalescer(
        r.run, max_items=3, max_in_flight=1, weight=lambda i: i, max_weight=9
    )
    await asyncio.gather(c.submit("a", 1), *(c.submit("a", i) for i in (2, 3, 4, 5, 6)), c.submit("b", 7))
    batches = [(key, items) for key, items, _ in r.calls]
    assert batches[0] == ("a", [1])
    for key, items in batches[1:]:
        assert len(items) <= 3 and (sum(items) <= 9 or len(items) == 1)
        assert all((i == 7) == (key == "b") for i in items)  # never two keys in one call
    assert sorted(i for _, items in batches for i in items) == [1, 2, 3, 4, 5, 6, 7]


async def test_the_oldest_waiting_key_goes_first() -> None:
    r = Recorder(delay=0.01)
    c: Coalescer[str, int, int] = Coalescer(r.run, max_items=1, max_in_flight=1)
    await asyncio.gather(c.submit("a", 1), c.submit("b", 2), c.submit("a", 3), c.submit("b", 4))
    assert [items[0] for _, items, _ in r.calls] == [1, 2, 3, 4]


async def test_a_failed_call_fails_each_of_its_items_only() -> None:
    r = Recorder(delay=0.01)
    r.fail = {3}
    c: Coalescer[str, int, int] = Coalescer(r.run, max_items=2, max_in_flight=1)
    out = await asyncio.gather(*(c.submit("k", i) for i in (1, 2, 3, 4, 5)), return_exceptions=True)
    # calls: [1], [2, 3] (fails), [4, 5]
    assert out[0] == 10 and out[3:] == [40, 50]
    assert all(isinstance(e, ValueError) for e in out[1:3])


async def test_a_cancelled_caller_drops_only_its_result_and_deadlines_travel() -> None:
    r = Recorder(delay=0.02)
    c: Coalescer[str, int, int] = Coalescer(r.run, max_items=8, max_in_flight=1)
    first = asyncio.create_task(c.submit("k", 1))
    await asyncio.sleep(0)
    gone = asyncio.create_task(c.submit("k", 2, 5.0))
    kept = asyncio.create_task(c.submit("k", 3, 7.0))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept == 30 and await first == 10
    assert r.calls[1][1:] == ([3], [7.0])  # the cancelled item was never sent
    await c.aclose()


def test_bad_bounds_are_refused() -> None:
    async def run(key: object, items: list[int], deadlines: list[float | None]) -> list[int]:
        return items

    with pytest.raises(ValueError):
        Coalescer(run, max_items=0, max_in_flight=1)
    with pytest.raises(ValueError):
        Coalescer(run, max_items=1, max_in_flight=0)
