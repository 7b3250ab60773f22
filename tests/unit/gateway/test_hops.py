"""A spent deadline names the upstream the request's time went to."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from recsys_core.client import reset_deadline, set_deadline
from recsys_core.errors import UpstreamError
from recsys_gateway import hops
from recsys_gateway.upstreams import _Upstream


async def test_no_time_left_names_the_slow_upstream() -> None:
    hops.start()
    embedder = _Upstream("embedder", channel=None, max_in_flight=4, timeout=5.0)  # type: ignore[arg-type]
    catalog = _Upstream("catalog", channel=None, max_in_flight=4, timeout=5.0)  # type: ignore[arg-type]

    async def slow(request: object, timeout: float, metadata: object = None) -> str:
        await asyncio.sleep(0.2)
        return "ok"

    token = set_deadline(0.25)  # the caller's budget for the whole request
    try:
        assert await embedder.call(slow, None) == "ok"
        await asyncio.sleep(0.1)
        with pytest.raises(UpstreamError) as exc:
            await catalog.call(slow, None)
    finally:
        reset_deadline(token)
    assert exc.value.status_code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert exc.value.upstream == "embedder"
    assert "no time left to call catalog" in exc.value.message
    assert "embedder" in hops.summary()


async def test_an_upstream_reset_is_unavailable_not_cancelled() -> None:
    """A CANCELLED status from an upstream (it reset the call, e.g. closing its listener) reaches
    the caller as UNAVAILABLE naming it: the caller did not cancel anything and may retry."""
    hops.start()
    catalog = _Upstream("catalog", channel=None, max_in_flight=4, timeout=5.0)  # type: ignore[arg-type]

    async def reset(request: object, timeout: float, metadata: object = None) -> str:
        raise grpc.aio.AioRpcError(
            grpc.StatusCode.CANCELLED, grpc.aio.Metadata(), grpc.aio.Metadata(), "CANCELLED"
        )

    with pytest.raises(UpstreamError) as exc:
        await catalog.call(reset, None)
    assert exc.value.status_code == grpc.StatusCode.UNAVAILABLE
    assert exc.value.upstream == "catalog"
    assert exc.value.message.startswith("catalog: unavailable: catalog reset the call")
