"""Per-request time spent in each upstream, so a spent deadline names where the time went.

The servicer calls :func:`start` at the top of every RPC (one dict per request, shared by the
tasks that fan out from it); every upstream call adds its duration with :func:`record`.
"""

from __future__ import annotations

import contextvars

_spent: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "recsys_gateway_hops", default=None
)


def start() -> None:
    _spent.set({})


def detach() -> None:
    """Record nothing in this context (a task that serves several requests at once)."""
    _spent.set(None)


def record(upstream: str, seconds: float) -> None:
    spent = _spent.get()
    if spent is not None:
        spent[upstream] = spent.get(upstream, 0.0) + seconds


def slowest() -> tuple[str, float] | None:
    spent = _spent.get()
    if not spent:
        return None
    name = max(spent, key=lambda k: spent[k])
    return name, spent[name]


def summary() -> str:
    spent = _spent.get() or {}
    return ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]))
