"""Degraded mode's building blocks (issue #16): the circuit breaker (fake clock), the per-hop
budget, and the breaker inside the upstream client (``_Upstream.call``)."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from prometheus_client import REGISTRY
from recsys_core.client import reset_deadline, set_deadline
from recsys_core.errors import UpstreamError
from recsys_gateway import hops
from recsys_gateway.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    HopBudget,
    breaker_metric,
    is_down,
)
from recsys_gateway.upstreams import _Upstream


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock, threshold: int = 3, cooldown: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker("catalog", failure_threshold=threshold, cooldown_s=cooldown, clock=clock)


def _fail(b: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        b.acquire()
        b.failure("connection refused")


def test_opens_after_n_consecutive_failures_and_fails_at_once() -> None:
    clock = Clock()
    b = _breaker(clock)
    _fail(b, 2)
    assert b.state == BreakerState.CLOSED
    _fail(b)
    assert b.state == BreakerState.OPEN
    with pytest.raises(CircuitOpen) as exc:
        b.acquire()
    err = exc.value
    assert isinstance(err, UpstreamError) and is_down(err)
    assert err.status_code == grpc.StatusCode.UNAVAILABLE and err.upstream == "catalog"
    assert err.message.startswith("catalog: unavailable: circuit open after 3 consecutive failures")
    assert "next probe in 10.0 s" in err.message and "connection refused" in err.message


def test_a_success_resets_the_count() -> None:
    b = _breaker(Clock())
    _fail(b, 2)
    b.acquire()
    b.success()
    _fail(b, 2)
    assert b.state == BreakerState.CLOSED and b.failures == 2


def test_half_open_lets_one_probe_through_after_the_cool_down() -> None:
    clock = Clock()
    b = _breaker(clock)
    _fail(b, 3)
    clock.now += 9.9
    with pytest.raises(CircuitOpen):
        b.acquire()
    clock.now += 0.1
    b.acquire()  # the probe
    assert b.state == BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpen) as exc:  # another call while the probe is out
        b.acquire()
    assert "a probe is in flight" in exc.value.message
    b.success()
    assert b.state == BreakerState.CLOSED and b.failures == 0
    b.acquire()  # closed: every call passes
    b.acquire()


def test_a_failed_probe_opens_it_for_another_cool_down() -> None:
    clock = Clock()
    b = _breaker(clock)
    _fail(b, 3)
    clock.now += 10
    _fail(b)  # the probe fails
    assert b.state == BreakerState.OPEN
    clock.now += 5
    with pytest.raises(CircuitOpen):
        b.acquire()
    clock.now += 5
    b.acquire()
    assert b.state == BreakerState.HALF_OPEN


def test_a_probe_without_verdict_frees_the_slot() -> None:
    clock = Clock()
    b = _breaker(clock)
    _fail(b, 3)
    clock.now += 10
    b.acquire()
    b.release()  # e.g. the caller was cancelled
    b.acquire()  # the next call may probe
    assert b.state == BreakerState.HALF_OPEN


def test_failures_of_calls_started_before_it_opened_do_not_extend_the_cool_down() -> None:
    clock = Clock()
    b = _breaker(clock)
    for _ in range(5):  # five calls in flight at once
        b.acquire()
    for _ in range(5):
        b.failure("x")
        clock.now += 1
    clock.now += 10 - 3  # 10 s after it opened (at the third failure)
    b.acquire()
    assert b.state == BreakerState.HALF_OPEN


def test_threshold_zero_never_opens() -> None:
    b = _breaker(Clock(), threshold=0)
    _fail(b, 100)
    assert b.state == BreakerState.CLOSED


def test_state_changes_reach_the_gauge() -> None:
    clock = Clock()
    b = CircuitBreaker("test-gauge", failure_threshold=1, cooldown_s=1, clock=clock, on_change=breaker_metric)

    def gauge() -> float | None:
        return REGISTRY.get_sample_value("recsys_gateway_upstream_circuit_state", {"upstream": "test-gauge"})

    assert gauge() == 0
    _fail(b)
    assert gauge() == 2
    clock.now += 1
    b.acquire()
    assert gauge() == 1
    b.success()
    assert gauge() == 0


def test_hop_budget() -> None:
    budget = HopBudget(default_s=5.0, fraction=0.5, min_s=0.3, margin_s=0.0)
    assert budget.timeout() == 5.0  # no caller deadline
    for remaining, expected in [(100.0, 5.0), (2.0, 1.0), (0.4, 0.3), (0.2, 0.2)]:
        token = set_deadline(remaining)
        try:
            assert budget.timeout() == pytest.approx(expected, abs=0.01)
        finally:
            reset_deadline(token)
    token = set_deadline(-1.0)
    try:
        assert budget.timeout() == 0.0
    finally:
        reset_deadline(token)
    assert budget.counts_as_down(0.3) and not budget.counts_as_down(0.2)


def _rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), code.name)


def _upstream(threshold: int = 2, budget: HopBudget | None = None) -> _Upstream:
    breaker = CircuitBreaker("retriever", failure_threshold=threshold, cooldown_s=60)
    return _Upstream("retriever", channel=None, max_in_flight=4, budget=budget, breaker=breaker)  # type: ignore[arg-type]


async def test_upstream_down_opens_the_circuit_and_later_calls_are_not_made() -> None:
    hops.start()
    up = _upstream()
    calls = 0

    async def down(request: object, timeout: float, metadata: object = None) -> str:
        nonlocal calls
        calls += 1
        raise _rpc_error(grpc.StatusCode.UNAVAILABLE)

    for _ in range(2):
        with pytest.raises(UpstreamError) as exc:
            await up.call(down, None)
        assert not isinstance(exc.value, CircuitOpen)
    with pytest.raises(CircuitOpen) as exc2:
        await up.call(down, None)
    assert calls == 2  # the third was refused without a call
    assert exc2.value.message.startswith("retriever: unavailable: circuit open")


async def test_an_answer_with_an_error_status_counts_as_up() -> None:
    hops.start()
    up = _upstream(threshold=2)

    async def refuse(request: object, timeout: float, metadata: object = None) -> str:
        raise _rpc_error(grpc.StatusCode.INVALID_ARGUMENT)

    async def down(request: object, timeout: float, metadata: object = None) -> str:
        raise _rpc_error(grpc.StatusCode.UNAVAILABLE)

    for _ in range(3):
        with pytest.raises(UpstreamError):
            await up.call(down, None)
        with pytest.raises(UpstreamError) as exc:
            await up.call(refuse, None)
        assert exc.value.status_code == grpc.StatusCode.INVALID_ARGUMENT
    assert up.breaker.state == BreakerState.CLOSED


async def test_a_deadline_counts_only_when_the_hop_had_a_real_slice() -> None:
    hops.start()
    up = _upstream(threshold=1, budget=HopBudget(default_s=5.0, fraction=0.5, min_s=0.2))

    async def hang(request: object, timeout: float, metadata: object = None) -> str:
        await asyncio.sleep(timeout)
        raise _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED)

    token = set_deadline(0.2)  # the hop gets 0.15 s: below min_s, the caller's deadline is short
    try:
        with pytest.raises(UpstreamError) as exc:
            await up.call(hang, None)
    finally:
        reset_deadline(token)
    assert exc.value.status_code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert up.breaker.state == BreakerState.CLOSED
    token = set_deadline(1.0)  # half of it, 0.475 s: the upstream had its slice and said nothing
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamError):
            await up.call(hang, None)
    finally:
        reset_deadline(token)
    assert 0.4 < time.monotonic() - started < 0.6
    assert up.breaker.state == BreakerState.OPEN


async def test_settings_reach_the_breakers_and_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from recsys_core.settings import load_settings
    from recsys_gateway.settings import GatewaySettings
    from recsys_gateway.upstreams import GrpcUpstreams

    monkeypatch.setenv("RECSYS_GATEWAY_BREAKER_FAILURES", "7")
    monkeypatch.setenv("RECSYS_GATEWAY_BREAKER_COOLDOWN_S", "2.5")
    monkeypatch.setenv("RECSYS_GATEWAY_HOP_BUDGET_FRACTION", "0.25")
    monkeypatch.setenv("RECSYS_GATEWAY_HOP_BUDGET_MIN_S", "0.1")
    settings = load_settings(GatewaySettings)
    assert settings.fallbacks is True
    up = GrpcUpstreams(settings)
    try:
        assert up.budget == HopBudget(default_s=settings.upstream_timeout_s, fraction=0.25, min_s=0.1)
        assert sorted(up.breakers) == ["catalog", "embedder", "retriever"]
        breaker = up.breakers["retriever"]
        for _ in range(6):
            breaker.acquire()
            breaker.failure("x")
        assert breaker.state == BreakerState.CLOSED
        breaker.acquire()
        breaker.failure("x")
        assert breaker.state == BreakerState.OPEN
        with pytest.raises(CircuitOpen, match=r"next probe in 2\.5 s"):
            breaker.acquire()
    finally:
        await up.close()


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("HOP_BUDGET_FRACTION", "0"),
        ("HOP_BUDGET_FRACTION", "1.5"),
        ("BREAKER_FAILURES", "-1"),
        ("BREAKER_COOLDOWN_S", "0"),
    ],
)
def test_bad_degraded_mode_settings_fail_fast(monkeypatch: pytest.MonkeyPatch, name: str, raw: str) -> None:
    from recsys_core.settings import SettingsError, load_settings
    from recsys_gateway.settings import GatewaySettings

    monkeypatch.setenv(f"RECSYS_GATEWAY_{name}", raw)
    with pytest.raises(SettingsError, match=f"RECSYS_GATEWAY_{name}"):
        load_settings(GatewaySettings)
