"""Degraded mode (issue #16): per-upstream circuit breakers, per-hop time budgets, metrics.

``CircuitBreaker``: one per upstream (catalog, embedder, retriever), consulted by every call of
that upstream (``upstreams._Upstream.call``). CLOSED: calls pass; ``failure_threshold``
consecutive failures of the kind that mean "the upstream is down" (UNAVAILABLE, or
DEADLINE_EXCEEDED of a call that had a real slice of time) open it. OPEN: calls fail at once
with :class:`CircuitOpen` (UNAVAILABLE naming the upstream), so the service falls back without
waiting. After ``cooldown_s`` the next call is let through as the one probe (HALF_OPEN; others
still fail at once while it is out): its success closes the breaker, its failure opens it for
another cool-down. Any answer from the upstream, errors such as INVALID_ARGUMENT or NOT_FOUND
included, is a success: the upstream is up.

``HopBudget``: how long one upstream call may take: at most ``fraction`` of the caller's
remaining deadline (but not less than ``min_s``, unless less remains), never more than what
remains less a margin, and ``default_s`` when the caller set no deadline. A hanging upstream so
costs a bounded slice and the fallback still has time to answer within the caller's deadline.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from prometheus_client import Counter, Gauge
from recsys_core.client import DEFAULT_MARGIN_S, current_deadline
from recsys_core.errors import UpstreamError

# What a degraded answer lists in its `degraded` field (and the metric's `reason` label).
CATALOG_METADATA = "catalog: movie metadata"
CATALOG_GENRES = "catalog: genre list may be stale"
RETRIEVER_POPULAR = "retriever: popular list served"
EMBEDDER_POPULAR = "embedder: popular list served"
EMBEDDER_BECAUSE = "embedder: because you liked"
#: The retriever down: movies added since training (issue #20) take no part in "because you liked".
RETRIEVER_BECAUSE = "retriever: because you liked"

#: Status codes of an upstream that is down (a fallback may answer instead).
DOWN_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

DEGRADED = Counter(
    "recsys_gateway_degraded_responses",
    "Gateway answers served degraded, by RPC and by what was skipped (one count per reason)",
    ["rpc", "reason"],
)
BREAKER_STATE = Gauge(
    "recsys_gateway_upstream_circuit_state",
    "Circuit breaker of each upstream: 0 closed, 1 half-open (probing), 2 open",
    ["upstream"],
)


def is_down(exc: BaseException) -> bool:
    """An upstream error that a fallback may answer (the upstream unavailable or out of time)."""
    return isinstance(exc, UpstreamError) and exc.upstream_code in DOWN_CODES


def is_not_found(exc: BaseException) -> bool:
    """An upstream's NOT_FOUND (e.g. the retriever has no such version)."""
    return isinstance(exc, UpstreamError) and exc.upstream_code == grpc.StatusCode.NOT_FOUND


def count_degraded(rpc: str, reasons: Iterable[str]) -> None:
    for reason in reasons:
        DEGRADED.labels(rpc=rpc, reason=reason).inc()


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitOpen(UpstreamError):
    """An upstream's circuit is open: the call was not made (UNAVAILABLE naming the upstream)."""

    def __init__(self, upstream: str, failures: int, retry_in_s: float, last: str) -> None:
        when = f"next probe in {retry_in_s:.1f} s" if retry_in_s > 0 else "a probe is in flight"
        super().__init__(
            upstream,
            grpc.StatusCode.UNAVAILABLE,
            f"unavailable: circuit open after {failures} consecutive failures, {when} (last: {last})",
        )
        self.retry_in_s = retry_in_s


class CircuitBreaker:
    """Consecutive-failure circuit breaker with one half-open probe at a time.

    Use: ``acquire()`` before the call (raises :class:`CircuitOpen`), then exactly one of
    ``success()``, ``failure(detail)`` or ``release()`` (no verdict: the caller gave up).
    ``failure_threshold`` 0 turns the breaker off (it never opens)."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 0 or cooldown_s < 0:
            raise ValueError("failure_threshold and cooldown_s must be >= 0")
        self.name = name
        self._threshold = failure_threshold
        self._cooldown = cooldown_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._last = ""
        if on_change is not None:
            on_change(name, self._state)

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted so far."""
        return self._failures

    def _set(self, state: BreakerState) -> None:
        if state != self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(self.name, state)

    def acquire(self) -> None:
        """Let a call through, or raise :class:`CircuitOpen` (open, or its probe is out)."""
        if self._state == BreakerState.CLOSED:
            return
        if self._state == BreakerState.OPEN:
            left = self._opened_at + self._cooldown - self._clock()
            if left > 0:
                raise CircuitOpen(self.name, self._failures, left, self._last)
            self._set(BreakerState.HALF_OPEN)
        if self._probing:
            raise CircuitOpen(self.name, self._failures, 0.0, self._last)
        self._probing = True  # this call is the probe

    def success(self) -> None:
        self._failures = 0
        self._probing = False
        self._set(BreakerState.CLOSED)

    def failure(self, detail: str = "") -> None:
        self._failures += 1
        self._last = detail[:200]
        if self._threshold == 0:
            return
        if self._state == BreakerState.HALF_OPEN and self._probing:
            self._probing = False
            self._open()
        elif self._state == BreakerState.CLOSED and self._failures >= self._threshold:
            self._open()
        # OPEN: a call started before it opened; the cool-down runs from the opening.

    def release(self) -> None:
        """The call ended without telling whether the upstream is up (e.g. it was cancelled)."""
        self._probing = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._set(BreakerState.OPEN)


def breaker_metric(name: str, state: BreakerState) -> None:
    """``on_change`` of the production breakers: the state gauge."""
    BREAKER_STATE.labels(upstream=name).set(int(state))


@dataclass(frozen=True)
class HopBudget:
    """The timeout of one upstream call, from the caller's remaining deadline (see the module)."""

    default_s: float = 5.0
    fraction: float = 1.0
    min_s: float = 0.0
    margin_s: float = DEFAULT_MARGIN_S

    def timeout(self) -> float:
        """Seconds the next upstream call may take; 0 = no time left (fail, do not call)."""
        deadline = current_deadline()
        if deadline is None:
            return self.default_s
        left = deadline - time.monotonic() - self.margin_s
        if left <= 0:
            return 0.0
        return min(self.default_s, left, max(self.min_s, self.fraction * left))

    def counts_as_down(self, timeout: float) -> bool:
        """Whether a call given ``timeout`` that ran out of it says the upstream is down: only
        when it had a real slice (at least ``min_s``), not a caller's nearly spent deadline."""
        return timeout >= self.min_s


__all__ = [
    "BREAKER_STATE",
    "CATALOG_GENRES",
    "CATALOG_METADATA",
    "DEGRADED",
    "DOWN_CODES",
    "EMBEDDER_BECAUSE",
    "EMBEDDER_POPULAR",
    "RETRIEVER_BECAUSE",
    "RETRIEVER_POPULAR",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpen",
    "HopBudget",
    "breaker_metric",
    "count_degraded",
    "is_down",
]
