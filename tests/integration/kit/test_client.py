"""open_channel: request id and deadline cross a hop; retries only for idempotent methods on UNAVAILABLE."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys_core import errors
from recsys_core.client import open_channel
from recsys_core.testing import serving

CATALOG = "recsys.catalog.v1.Catalog"


async def test_request_id_and_deadline_cross_a_hop(make_server: Any, toy: Any) -> None:
    """client -> front (toy GetMovies calls back through open_channel) -> back: one request id."""
    async with serving(make_server()) as (_, back_port):
        async with open_channel(f"127.0.0.1:{back_port}", service=CATALOG) as back_channel:
            toy.downstream = catalog_pb2_grpc.CatalogStub(back_channel)
            # front and back share the toy's recorders; only front has a downstream
            front_toy = type(toy)()
            front_toy.downstream = toy.downstream
            toy.downstream = None
            async with serving(make_server(front_toy)) as (_, front_port):
                async with grpc.aio.insecure_channel(f"127.0.0.1:{front_port}") as channel:
                    stub = catalog_pb2_grpc.CatalogStub(channel)
                    call = stub.GetMovies(
                        catalog_pb2.GetMoviesRequest(movie_ids=[1, 5000]),
                        metadata=(("x-request-id", "hop-7"),),
                        timeout=3,
                    )
                    resp = await call
                    assert [m.movie_id for m in resp.movies] == [1] and list(resp.missing_ids) == [5000]
                    assert dict(await call.trailing_metadata())["x-request-id"] == "hop-7"
                    # no id from the client: the front's own id travels on
                    await stub.GetMovies(catalog_pb2.GetMoviesRequest(movie_ids=[2]), timeout=3)

    assert front_toy.request_ids[0] == "hop-7" and toy.request_ids[0] == "hop-7"
    assert front_toy.request_ids[1] == toy.request_ids[1] != "hop-7"
    # the back hop got the front's remaining budget (< the client's 3 s), not its own default
    assert 0 < toy.budgets[0] < 3


async def _get_movies(stub: Any) -> Any:
    return await stub.GetMovies(catalog_pb2.GetMoviesRequest(movie_ids=[1]), timeout=5)


async def test_retries_only_idempotent_methods_on_unavailable(kit: Any) -> None:
    server, _, toy = kit
    target = f"127.0.0.1:{server.port}"
    async with open_channel(target, service=CATALOG, idempotent_methods=["GetMovies"], max_attempts=3) as ch:
        stub = catalog_pb2_grpc.CatalogStub(ch)
        # idempotent read, UNAVAILABLE twice: retried, third attempt succeeds
        toy.fail_times["GetMovies"] = 2
        assert [m.movie_id for m in (await _get_movies(stub)).movies] == [1]
        assert toy.calls["GetMovies"] == 3
        # idempotent but failing more often than max_attempts: UNAVAILABLE after 3 attempts
        toy.calls.clear()
        toy.fail_times["GetMovies"] = 5
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _get_movies(stub)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert toy.calls["GetMovies"] == 3
        # idempotent, but a non-retryable code: one attempt
        toy.calls.clear()
        toy.fail_times.clear()
        toy.errors["GetMovies"] = errors.NotFound("nope")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _get_movies(stub)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        assert toy.calls["GetMovies"] == 1
        # not listed as idempotent: UNAVAILABLE is returned at once
        toy.fail_times["Describe"] = 1
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Describe(catalog_pb2.DescribeRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert toy.calls["Describe"] == 1


async def test_request_id_travels_on_streaming_calls_too() -> None:
    """grpc.aio files an interceptor under one call type only: every type must carry the id."""
    from recsys_core.logs import reset_request_id, set_request_id

    seen: dict[str, str | None] = {}

    def rid(context: Any) -> str | None:
        return dict(context.invocation_metadata() or ()).get("x-request-id")

    async def unary_stream(request: bytes, context: Any) -> Any:
        seen["unary_stream"] = rid(context)
        yield request

    async def stream_unary(requests: Any, context: Any) -> bytes:
        seen["stream_unary"] = rid(context)
        return b"".join([r async for r in requests])

    async def stream_stream(requests: Any, context: Any) -> Any:
        seen["stream_stream"] = rid(context)
        async for r in requests:
            yield r

    async def unary_unary(request: bytes, context: Any) -> bytes:
        seen["unary_unary"] = rid(context)
        return request

    handler = grpc.method_handlers_generic_handler(
        "kit.rid.Calls",
        {
            "UU": grpc.unary_unary_rpc_method_handler(unary_unary),
            "US": grpc.unary_stream_rpc_method_handler(unary_stream),
            "SU": grpc.stream_unary_rpc_method_handler(stream_unary),
            "SS": grpc.stream_stream_rpc_method_handler(stream_stream),
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    token = set_request_id("rid-stream-9")
    try:
        async with open_channel(f"127.0.0.1:{port}", service="kit.rid.Calls") as ch:

            async def two() -> Any:
                yield b"a"
                yield b"b"

            assert await ch.unary_unary("/kit.rid.Calls/UU")(b"x", timeout=5) == b"x"
            assert [r async for r in ch.unary_stream("/kit.rid.Calls/US")(b"x", timeout=5)] == [b"x"]
            assert await ch.stream_unary("/kit.rid.Calls/SU")(two(), timeout=5) == b"ab"
            assert [r async for r in ch.stream_stream("/kit.rid.Calls/SS")(two(), timeout=5)] == [b"a", b"b"]
    finally:
        reset_request_id(token)
        await server.stop(None)
    assert seen == {
        k: "rid-stream-9" for k in ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
    }
