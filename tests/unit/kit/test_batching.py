"""recsys_core.batching: the one micro-batcher, every policy it offers (issues #15, #17)."""

from __future__ import annotations

import asyncio

import pytest
from recsys_core.batching import Batcher, BatcherClosed, QueueFull


class Recorder:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[object, list[int], list[float | None]]] = []
        self.started: list[float] = []
        self.delay = delay
        self.fail: set[int] = set()
        self.gate: asyncio.Event | None = None

    async def run(self, key: object, items: list[int], deadlines: list[float | None]) -> list[int]:
        self.calls.append((key, list(items), list(deadlines)))
        self.started.append(asyncio.get_running_loop().time())
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delay)
        if self.fail & set(items):
            raise ValueError(f"bad item in {items}")
        return [i * 10 for i in items]

    @property
    def batches(self) -> list[list[int]]:
        return [items for _, items, _ in self.calls]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# ---------------------------------------------------------------- natural batching (no timer)
async def test_an_idle_batcher_sends_at_once_and_alone() -> None:
    r = Recorder()
    c: Batcher[str, int, int] = Batcher(r.run, max_items=8, max_in_flight=1)
    assert await c.submit("k", 3) == 30
    assert await c.submit("k", 4) == 40
    assert r.batches == [[3], [4]]


async def test_items_arriving_while_a_call_is_out_leave_together() -> None:
    r = Recorder(delay=0.01)
    c: Batcher[str, int, int] = Batcher(r.run, max_items=8, max_in_flight=1)
    out = await asyncio.gather(*(c.submit("k", i) for i in range(1, 6)))
    assert out == [10, 20, 30, 40, 50]  # each caller its own result, in order
    assert r.batches == [[1], [2, 3, 4, 5]]
    assert c.stats.batches == 2 and c.stats.max_batch == 4 and c.stats.items == 5 and c.stats.submitted == 5
    assert c.stats.mean_batch == 2.5


async def test_max_in_flight_none_sends_every_arrival_at_once() -> None:
    r = Recorder()
    r.gate = asyncio.Event()
    c: Batcher[str, int, int] = Batcher(r.run, max_items=8, max_in_flight=None)
    tasks = [asyncio.ensure_future(c.submit("k", i)) for i in range(3)]
    await settle()
    assert r.batches == [[0], [1], [2]] and c.in_flight == 3
    r.gate.set()
    assert await asyncio.gather(*tasks) == [0, 10, 20]


async def test_max_items_max_weight_and_keys_bound_a_call() -> None:
    r = Recorder(delay=0.01)
    c: Batcher[str, int, int] = Batcher(r.run, max_items=3, max_in_flight=1, weight=lambda i: i, max_weight=9)
    await asyncio.gather(c.submit("a", 1), *(c.submit("a", i) for i in (2, 3, 4, 5, 6)), c.submit("b", 7))
    batches = [(key, items) for key, items, _ in r.calls]
    # "a" 1 alone (idle); then the key of the oldest item, "a": 2+3+4 = 9; 5 (+6 = 11 > 9); 6 came before 7
    assert batches == [("a", [1]), ("a", [2, 3, 4]), ("a", [5]), ("a", [6]), ("b", [7])]


async def test_a_heavy_first_item_leaves_alone_and_weightless_items_join_a_full_batch() -> None:
    r = Recorder()
    r.gate = asyncio.Event()
    c: Batcher[str, int, int] = Batcher(
        r.run, max_items=8, max_in_flight=1, weight=lambda i: i % 100, max_weight=5
    )
    first = asyncio.ensure_future(c.submit("k", 0))
    await settle()
    rest = [asyncio.ensure_future(c.submit("k", i)) for i in (7, 2, 3, 100, 1)]
    await settle()
    r.gate.set()
    await asyncio.gather(first, *rest)
    # 7 weighs more than max_weight: alone; 2+3 = 5 is the cap, 100 weighs 0 and still fits; 1 does not
    assert r.batches == [[0], [7], [2, 3, 100], [1]]
    assert c.stats.weight == 0 + 7 + 5 + 1


async def test_keys_are_never_merged_and_the_oldest_waiting_key_goes_first() -> None:
    r = Recorder(delay=0.01)
    c: Batcher[str, int, int] = Batcher(r.run, max_items=1, max_in_flight=1)
    await asyncio.gather(c.submit("a", 1), c.submit("b", 2), c.submit("a", 3), c.submit("b", 4))
    assert [(key, items) for key, items, _ in r.calls] == [("a", [1]), ("b", [2]), ("a", [3]), ("b", [4])]


async def test_a_failed_call_fails_each_of_its_items_only() -> None:
    r = Recorder(delay=0.01)
    r.fail = {3}
    c: Batcher[str, int, int] = Batcher(r.run, max_items=2, max_in_flight=1)
    out = await asyncio.gather(*(c.submit("k", i) for i in (1, 2, 3, 4, 5)), return_exceptions=True)
    # calls: [1], [2, 3] (fails), [4, 5]
    assert r.batches == [[1], [2, 3], [4, 5]]
    assert out[0] == 10 and out[3:] == [40, 50]
    assert all(isinstance(e, ValueError) for e in out[1:3])
    assert out[1] is out[2]  # the batch's one exception, handed to each of its callers


async def test_a_wrong_result_count_fails_the_batch() -> None:
    async def run(key: object, items: list[int], deadlines: list[float | None]) -> list[int]:
        return items[:-1]

    c: Batcher[None, int, int] = Batcher(run, max_items=4)
    with pytest.raises(RuntimeError, match="1 items"):
        await c.submit(None, 1)
    assert await asyncio.gather(c.submit(None, 2), c.submit(None, 3), return_exceptions=True) != [2, 3]


async def test_a_cancelled_caller_drops_only_its_result_and_deadlines_travel() -> None:
    r = Recorder(delay=0.02)
    c: Batcher[str, int, int] = Batcher(r.run, max_items=8, max_in_flight=1)
    first = asyncio.create_task(c.submit("k", 1))
    await asyncio.sleep(0)
    gone = asyncio.create_task(c.submit("k", 2, 5.0))
    kept = asyncio.create_task(c.submit("k", 3, 7.0))
    await asyncio.sleep(0)
    gone.cancel()
    assert await kept == 30 and await first == 10
    assert r.calls[1][1:] == ([3], [7.0])  # the cancelled item was never sent; deadlines per item
    assert r.calls[0][2] == [None]
    with pytest.raises(asyncio.CancelledError):
        await gone
    await c.aclose()


async def test_a_caller_cancelled_during_the_call_does_not_break_the_others() -> None:
    r = Recorder()
    r.gate = asyncio.Event()
    c: Batcher[str, int, int] = Batcher(r.run, max_items=8, max_in_flight=1, max_wait_s=0.01)
    t1 = asyncio.create_task(c.submit("k", 1))
    t2 = asyncio.create_task(c.submit("k", 2))
    await asyncio.sleep(0.05)  # both are in the (blocked) call now
    assert r.batches == [[1, 2]]
    t1.cancel()
    r.gate.set()
    assert await t2 == 20
    with pytest.raises(asyncio.CancelledError):
        await t1


async def test_a_batch_whose_callers_are_all_gone_is_not_sent() -> None:
    r = Recorder()
    r.gate = asyncio.Event()
    c: Batcher[str, int, int] = Batcher(r.run, max_items=8, max_in_flight=1)
    first = asyncio.ensure_future(c.submit("k", 1))
    await settle()
    gone = [asyncio.ensure_future(c.submit("k", i)) for i in (2, 3)]
    await settle()
    for g in gone:
        g.cancel()
    await settle()
    r.gate.set()
    assert await first == 10
    await c.aclose()
    assert r.batches == [[1]] and c.stats.batches == 1 and c.idle


@pytest.mark.parametrize("keep", [False, True])
async def test_keep_cancelled_decides_whether_a_cancelled_item_holds_its_place(keep: bool) -> None:
    r = Recorder()
    r.gate = asyncio.Event()
    c: Batcher[str, int, int] = Batcher(r.run, max_items=2, max_in_flight=1, keep_cancelled=keep)
    first = asyncio.ensure_future(c.submit("k", 0))
    await settle()
    tasks = [asyncio.ensure_future(c.submit("k", i)) for i in (1, 2, 3)]
    await settle()
    tasks[0].cancel()
    await settle()
    r.gate.set()
    assert await first == 0 and await asyncio.gather(*tasks[1:]) == [20, 30]
    # kept: [1 (cancelled), 2] then [3]; dropped: 2 and 3 move up into one batch
    assert r.batches == ([[0], [2], [3]] if keep else [[0], [2, 3]])


# ---------------------------------------------------------------- the timer
async def test_max_wait_holds_a_batch_open_until_it_is_due() -> None:
    r = Recorder()
    c: Batcher[str, int, int] = Batcher(r.run, max_items=64, max_in_flight=1, max_wait_s=0.05)
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    async def late(i: int, after: float) -> int:
        await asyncio.sleep(after)
        return await c.submit("k", i)

    assert await asyncio.gather(late(1, 0), late(2, 0.01), late(3, 0.02)) == [10, 20, 30]
    assert r.batches == [[1, 2, 3]]  # a lone caller waits: no idle send
    assert r.started[0] - t0 >= 0.045


async def test_a_full_batch_leaves_without_waiting_for_the_timer() -> None:
    r = Recorder()
    c: Batcher[str, int, int] = Batcher(r.run, max_items=4, max_in_flight=2, max_wait_s=3600)
    out = await asyncio.wait_for(asyncio.gather(*(c.submit("k", i) for i in range(8))), timeout=5)
    assert out == [i * 10 for i in range(8)]
    assert r.batches == [[0, 1, 2, 3], [4, 5, 6, 7]]


async def test_a_full_weight_batch_leaves_without_waiting_for_the_timer() -> None:
    r = Recorder()
    c: Batcher[str, int, int] = Batcher(
        r.run, max_items=64, max_in_flight=2, max_wait_s=3600, weight=lambda i: i, max_weight=5
    )
    out = await asyncio.wait_for(asyncio.gather(c.submit("k", 2), c.submit("k", 3)), timeout=5)
    assert out == [20, 30] and r.batches == [[2, 3]]
    # 4 cannot join 2: the batch [2] is full as soon as 4 arrives, [4] waits for its timer
    late = asyncio.ensure_future(c.submit("k", 2))
    later = asyncio.ensure_future(c.submit("k", 4))
    assert await asyncio.wait_for(late, timeout=5) == 20
    assert not later.done()
    await c.aclose()
    assert await later == 40 and r.batches == [[2, 3], [2], [4]]


async def test_while_every_slot_is_busy_a_due_batch_keeps_growing() -> None:
    r = Recorder()
    r.gate = asyncio.Event()
    c: Batcher[str, int, int] = Batcher(r.run, max_items=64, max_in_flight=1, max_wait_s=0.01)
    first = asyncio.create_task(c.submit("k", 0))
    await asyncio.sleep(0.05)  # due, slot free: the first call is running (blocked)
    assert r.batches == [[0]]
    later = [asyncio.create_task(c.submit("k", i)) for i in range(1, 11)]
    await asyncio.sleep(0.05)  # due too, but no slot: still one call
    assert r.batches == [[0]]
    r.gate.set()
    assert await first == 0
    assert [await t for t in later] == [i * 10 for i in range(1, 11)]
    assert r.batches == [[0], list(range(1, 11))]


async def test_idle_send_sends_a_lone_item_at_once_and_batches_behind_a_call_in_flight() -> None:
    r = Recorder()
    c: Batcher[str, int, int] = Batcher(r.run, max_items=64, max_in_flight=1, max_wait_s=3600, idle_send=True)
    assert await asyncio.wait_for(c.submit("k", 1), timeout=1) == 10
    assert await asyncio.wait_for(c.submit("k", 2), timeout=1) == 20
    assert r.batches == [[1], [2]]

    r.gate = asyncio.Event()
    c2: Batcher[str, int, int] = Batcher(r.run, max_items=4, max_in_flight=1, max_wait_s=3600, idle_send=True)
    first = asyncio.ensure_future(c2.submit("k", 0))
    await asyncio.sleep(0)
    assert not c2.idle
    rest = [asyncio.ensure_future(c2.submit("k", i)) for i in range(1, 5)]
    await asyncio.sleep(0.01)
    assert r.batches[2:] == [[0]]  # the others wait: for a slot, and (timer) until full
    r.gate.set()
    assert await first == 0
    assert [await t for t in rest] == [10, 20, 30, 40]
    assert r.batches[2:] == [[0], [1, 2, 3, 4]]
    assert c2.stats.batches == 2 and c2.stats.submitted == 5


@pytest.mark.parametrize("full_first", [False, True])
async def test_full_first_serves_full_batches_before_older_due_ones(full_first: bool) -> None:
    r = Recorder()
    r.gate = asyncio.Event()
    c: Batcher[str, int, int] = Batcher(
        r.run, max_items=2, max_in_flight=1, max_wait_s=0.01, full_first=full_first
    )
    tasks = [asyncio.create_task(c.submit("a", 0))]
    await asyncio.sleep(0.05)  # "a" due and running (blocked)
    tasks.append(asyncio.create_task(c.submit("b", 1)))
    await asyncio.sleep(0.05)  # "b" is due
    tasks += [asyncio.create_task(c.submit("c", i)) for i in (2, 3)]  # "c" is full
    await asyncio.sleep(0.01)
    r.gate.set()
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30]
    keys = [key for key, _, _ in r.calls]
    assert keys == (["a", "c", "b"] if full_first else ["a", "b", "c"])


# ---------------------------------------------------------------- defer_send, queue, close
@pytest.mark.parametrize("defer", [False, True])
async def test_defer_send_lets_the_items_of_one_loop_step_leave_together(defer: bool) -> None:
    r = Recorder()
    c: Batcher[None, int, int] = Batcher(r.run, max_items=8, max_in_flight=1, defer_send=defer)
    # three tasks started in one step (as the server starts concurrent RPCs)
    tasks = [asyncio.ensure_future(c.submit(None, i)) for i in (1, 2, 3)]
    assert await asyncio.gather(*tasks) == [10, 20, 30]
    assert r.batches == ([[1, 2, 3]] if defer else [[1], [2, 3]])


async def test_submit_many_keeps_order_across_batches() -> None:
    r = Recorder()
    c: Batcher[None, int, int] = Batcher(r.run, max_items=3, max_in_flight=1, defer_send=True)
    assert await c.submit_many(None, list(range(10))) == [i * 10 for i in range(10)]
    assert r.batches == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


async def test_queue_full_and_closed() -> None:
    r = Recorder()
    r.gate = asyncio.Event()
    c: Batcher[None, int, int] = Batcher(r.run, max_items=2, max_in_flight=1, defer_send=True, max_queue=4)
    first = asyncio.ensure_future(c.submit_many(None, [1, 2]))
    await asyncio.sleep(0.01)  # the first batch is running, the queue is empty again
    assert c.queued == 0 and c.in_flight == 1
    waiting = asyncio.ensure_future(c.submit_many(None, [3, 4, 5, 6]))
    await asyncio.sleep(0.01)
    assert c.queued == 4
    with pytest.raises(QueueFull, match="4 items waiting"):
        await c.submit(None, 7)
    with pytest.raises(QueueFull):
        await c.submit_many(None, [7])
    r.gate.set()
    assert await first == [10, 20]
    assert await waiting == [30, 40, 50, 60]
    await c.aclose()
    assert c.closed
    with pytest.raises(BatcherClosed):
        await c.submit(None, 8)
    with pytest.raises(BatcherClosed):
        await c.submit_many(None, [8])
    assert r.batches == [[1, 2], [3, 4], [5, 6]]


async def test_aclose_sends_what_is_queued_at_once_within_the_slots() -> None:
    r = Recorder(delay=0.005)
    c: Batcher[None, int, int] = Batcher(r.run, max_items=2, max_in_flight=1, max_wait_s=3600)
    pending = [asyncio.ensure_future(c.submit(None, i)) for i in range(5)]
    await settle()
    assert r.batches == [[0, 1]]  # a full batch needs no timer; [2, 3] waits for the slot
    closing = asyncio.ensure_future(c.aclose())
    await asyncio.sleep(0)
    with pytest.raises(BatcherClosed):
        await c.submit(None, 9)  # refused as soon as closing starts
    await asyncio.wait_for(closing, timeout=5)  # the timer (an hour) no longer holds [4]
    assert [p.result() for p in pending] == [i * 10 for i in range(5)]
    assert r.batches == [[0, 1], [2, 3], [4]]
    assert c.idle and c.stats.batches == 3


async def test_aclose_at_once_ignores_the_slot_limit() -> None:
    r = Recorder()
    r.gate = asyncio.Event()
    c: Batcher[str, int, int] = Batcher(r.run, max_items=8, max_in_flight=1, max_wait_s=3600, idle_send=True)
    first = asyncio.ensure_future(c.submit("a", 0))
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(c.submit(k, i)) for k, i in (("a", 1), ("b", 2), ("a", 3))]
    await asyncio.sleep(0.01)
    assert r.batches == [[0]]
    closing = asyncio.ensure_future(c.aclose(at_once=True))
    await settle()
    assert sorted(map(tuple, r.batches)) == [(0,), (1, 3), (2,)]  # all three out while the first runs
    assert c.in_flight == 3
    r.gate.set()
    await closing
    assert await first == 0 and await asyncio.gather(*rest) == [10, 20, 30]


async def test_cancelling_a_running_batch_cancels_its_callers_and_frees_the_slot() -> None:
    r = Recorder()
    r.gate = asyncio.Event()
    c: Batcher[str, int, int] = Batcher(r.run, max_items=8, max_in_flight=1)
    first = asyncio.ensure_future(c.submit("k", 1))
    await settle()
    (task,) = c._tasks
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert c.in_flight == 0
    r.gate.set()
    assert await c.submit("k", 2) == 20


def test_bad_bounds_are_refused() -> None:
    async def run(key: object, items: list[int], deadlines: list[float | None]) -> list[int]:
        return items

    with pytest.raises(ValueError):
        Batcher(run, max_items=0, max_in_flight=1)
    with pytest.raises(ValueError):
        Batcher(run, max_items=1, max_in_flight=0)
    with pytest.raises(ValueError):
        Batcher(run, max_items=1, max_wait_s=-1)
    with pytest.raises(ValueError):
        Batcher(run, max_items=1, max_weight=-1)
    with pytest.raises(ValueError):
        Batcher(run, max_items=1, max_queue=-1)
    Batcher(run, max_items=1, max_in_flight=None)  # no limit
