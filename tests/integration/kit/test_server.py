"""The server kit end to end: health, reflection, error mapping, streaming, metrics, request ids, stop."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from recsys_core import errors
from recsys_core.testing import (
    health_status,
    reflection_file_containing,
    reflection_services,
    serving,
    wait_serving,
)

CATALOG = "recsys.catalog.v1.Catalog"
RETRIEVER = "recsys.retriever.v1.Retriever"


def _trailer(exc: grpc.aio.AioRpcError, key: str) -> Any:
    return dict(exc.trailing_metadata() or ()).get(key)


async def test_health_not_serving_until_set_serving(make_server: Any) -> None:
    async with serving(make_server(), serving=False) as (server, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for name in ("", CATALOG, RETRIEVER):
                assert await health_status(channel, name) == health_pb2.HealthCheckResponse.NOT_SERVING
            server.set_serving(True)
            await wait_serving(channel, CATALOG, timeout=5)
            for name in ("", CATALOG, RETRIEVER):
                assert await health_status(channel, name) == health_pb2.HealthCheckResponse.SERVING
            server.set_serving(False)
            assert await health_status(channel, CATALOG) == health_pb2.HealthCheckResponse.NOT_SERVING
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await health_status(channel, "no.such.Service")
            assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_services_and_resolves_method_symbols(kit: Any) -> None:
    _, channel, _ = kit
    names = await reflection_services(channel)
    assert {CATALOG, RETRIEVER, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= set(
        names
    )
    # what ghz/grpcurl ask: the file containing the *method*
    files = await reflection_file_containing(channel, "recsys.catalog.v1.Catalog.GetMovies")
    assert files[0].name == "recsys/catalog/v1/catalog.proto"
    assert "recsys/common/v1/common.proto" in {f.name for f in files}  # dependencies come along
    (service,) = [s for s in files[0].service if s.name == "Catalog"]
    assert "GetMovies" in {m.name for m in service.method}
    # stock lookups still work; unknown members are still "not found"
    assert (await reflection_file_containing(channel, RETRIEVER))[
        0
    ].name == "recsys/retriever/v1/retriever.proto"
    files = await reflection_file_containing(channel, "recsys.catalog.v1.GetMoviesRequest.movie_ids")
    assert files[0].name == "recsys/catalog/v1/catalog.proto"
    with pytest.raises(LookupError):
        await reflection_file_containing(channel, "recsys.catalog.v1.Catalog.NoSuchMethod")


@pytest.mark.parametrize(
    ("error", "code", "details"),
    [
        (errors.InvalidArgument("bad ids"), grpc.StatusCode.INVALID_ARGUMENT, "bad ids"),
        (errors.NotFound("no movie 7"), grpc.StatusCode.NOT_FOUND, "no movie 7"),
        (errors.AlreadyExists("dup"), grpc.StatusCode.ALREADY_EXISTS, "dup"),
        (errors.FailedPrecondition("not loaded"), grpc.StatusCode.FAILED_PRECONDITION, "not loaded"),
        (errors.ResourceExhausted("too many"), grpc.StatusCode.RESOURCE_EXHAUSTED, "too many"),
        (errors.Unauthenticated("no key"), grpc.StatusCode.UNAUTHENTICATED, "no key"),
        (errors.DeadlineExceeded("too slow"), grpc.StatusCode.DEADLINE_EXCEEDED, "too slow"),
        (
            errors.DependencyUnavailable("postgres", "connection refused"),
            grpc.StatusCode.UNAVAILABLE,
            "postgres unavailable: connection refused",
        ),
        (
            errors.UpstreamError("catalog", grpc.StatusCode.NOT_FOUND, "no user 9"),
            grpc.StatusCode.NOT_FOUND,
            "catalog: no user 9",
        ),
    ],
)
async def test_domain_errors_map_to_codes(
    kit: Any, error: Exception, code: grpc.StatusCode, details: str
) -> None:
    _, channel, toy = kit
    toy.errors["GetMovies"] = error
    stub = catalog_pb2_grpc.CatalogStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetMovies(catalog_pb2.GetMoviesRequest(movie_ids=[1]), timeout=5)
    assert info.value.code() == code
    assert info.value.details() == details
    assert _trailer(info.value, "x-request-id")
    assert errors.bad_request_fields(info.value) == {}


async def test_field_error_carries_bad_request_details(kit: Any) -> None:
    _, channel, toy = kit
    toy.errors["GetMovies"] = errors.InvalidArgument("at most 1000 ids", field="movie_ids")
    stub = catalog_pb2_grpc.CatalogStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetMovies(catalog_pb2.GetMoviesRequest(movie_ids=[1]), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "at most 1000 ids"
    assert errors.bad_request_fields(info.value) == {"movie_ids": "at most 1000 ids"}
    status = errors.status_from_metadata(info.value.trailing_metadata())  # type: ignore[arg-type]
    assert status is not None and status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    # the gateway keeps the field when wrapping an upstream failure
    wrapped = errors.UpstreamError.from_rpc_error("catalog", info.value)
    assert (wrapped.status_code, wrapped.field, wrapped.message) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "movie_ids",
        "catalog: at most 1000 ids",
    )


async def test_unexpected_exception_is_internal_without_traceback(
    kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _, channel, toy = kit
    toy.errors["Describe"] = RuntimeError("password=hunter2 exploded")
    stub = catalog_pb2_grpc.CatalogStub(channel)
    with caplog.at_level(logging.INFO, logger="recsys.rpc"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Describe(
                catalog_pb2.DescribeRequest(), metadata=(("x-request-id", "req-42"),), timeout=5
            )
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert info.value.details() == "internal error (request id req-42)"
    assert "Traceback" not in (info.value.details() or "") and "hunter2" not in (info.value.details() or "")
    assert _trailer(info.value, "x-request-id") == "req-42"
    # the traceback is in the log, with the request id
    (record,) = [r for r in caplog.records if r.exc_info]
    assert "exploded" in str(record.exc_info[1])  # type: ignore[index]
    (line,) = [r for r in caplog.records if getattr(r, "grpc_code", None) == "INTERNAL"]
    assert line.method == "recsys.catalog.v1.Catalog/Describe"  # type: ignore[attr-defined]


async def test_request_id_is_echoed_or_created(kit: Any) -> None:
    _, channel, toy = kit
    stub = catalog_pb2_grpc.CatalogStub(channel)
    call = stub.Describe(catalog_pb2.DescribeRequest(), metadata=(("x-request-id", "abc-1"),), timeout=5)
    assert (await call).movie_count == 3
    assert dict(await call.trailing_metadata())["x-request-id"] == "abc-1"
    call = stub.Describe(catalog_pb2.DescribeRequest(), timeout=5)
    await call
    created = dict(await call.trailing_metadata())["x-request-id"]
    assert created and created != "abc-1"
    assert toy.request_ids == ["abc-1", created]


async def test_client_streaming_and_server_streaming_handlers(kit: Any) -> None:
    _, channel, toy = kit
    stub = retriever_pb2_grpc.RetrieverStub(channel)

    def requests() -> Any:
        for i in range(3):
            yield retriever_pb2.UpsertRequest(version="v1", items=[retriever_pb2.VectorItem(movie_id=i + 1)])

    resp = await stub.Upsert(requests(), metadata=(("x-request-id", "up-1"),), timeout=5)
    assert resp.upserted == 3
    assert toy.request_ids == ["up-1"]

    toy.errors["Upsert-mid"] = errors.InvalidArgument("bad vector", field="items[0].vector")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Upsert(requests(), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert errors.bad_request_fields(info.value) == {"items[0].vector": "bad vector"}

    chunks = channel.unary_stream("/kit.test.Echo/Chunks")
    got = [c async for c in chunks(b"x", timeout=5)]
    assert got == [b"x0", b"x1", b"x2"]
    toy.errors["Chunks-mid"] = errors.NotFound("gone")
    call = chunks(b"y", timeout=5)
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for c in call:
            received.append(c)
    assert received == [b"y0", b"y1"]
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and info.value.details() == "gone"


def _http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def _sample(text: str, name: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


async def test_metrics_endpoint_counts_calls(make_server: Any) -> None:
    async with serving(make_server(metrics_port=0)) as (server, port):
        assert server.metrics_port
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        labels = {"service": "kit-test", "method": "recsys.catalog.v1.Catalog/GetMovies"}
        before_ok = _sample(
            await asyncio.to_thread(_http_get, url), "recsys_grpc_requests_total", {**labels, "code": "OK"}
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = catalog_pb2_grpc.CatalogStub(channel)
            await stub.GetMovies(catalog_pb2.GetMoviesRequest(movie_ids=[1, 2]), timeout=5)
            await stub.GetMovies(catalog_pb2.GetMoviesRequest(movie_ids=[1]), timeout=5)
        text = await asyncio.to_thread(_http_get, url)
        assert _sample(text, "recsys_grpc_requests_total", {**labels, "code": "OK"}) == before_ok + 2
        assert _sample(text, "recsys_grpc_request_duration_seconds_count", labels) >= 2
        assert "recsys_grpc_requests_in_flight" in text
        # health checks are not counted
        assert 'method="grpc.health.v1.Health/Check"' not in text


async def test_stop_drains_in_flight_call_then_runs_on_stop(make_server: Any, toy: Any) -> None:
    server = make_server()
    order: list[str] = []

    async def closed() -> None:
        order.append("on_stop")

    server.on_stop(closed)
    async with serving(server) as (_, port):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = catalog_pb2_grpc.CatalogStub(channel)
            toy.delay["Describe"] = 0.5
            slow = asyncio.ensure_future(stub.Describe(catalog_pb2.DescribeRequest(), timeout=10))
            await asyncio.wait_for(toy.entered.wait(), 5)
            await server.stop(grace=5)
            order.append("stopped")
            assert (await slow).movie_count == 3  # finished during the drain
            assert order == ["on_stop", "stopped"]
            await server.stop()  # idempotent
            assert order == ["on_stop", "stopped"]
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Describe(catalog_pb2.DescribeRequest(), timeout=2)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_bidi_streaming_and_servicer_set_statuses(kit: Any, caplog: pytest.LogCaptureFixture) -> None:
    _, channel, toy = kit
    echo = channel.stream_stream("/kit.test.Echo/Echo")
    assert [r async for r in echo(iter([b"a", b"b"]), timeout=5)] == [b"A", b"B"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        _ = [r async for r in echo(iter([b"a", b"boom"]), timeout=5)]
    assert info.value.code() == grpc.StatusCode.INTERNAL and "boom" not in (info.value.details() or "")

    own = channel.unary_unary("/kit.test.Echo/OwnStatus")
    with caplog.at_level(logging.INFO, logger="recsys.rpc"):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await own(b"abort", timeout=5)
        assert (info.value.code(), info.value.details()) == (grpc.StatusCode.PERMISSION_DENIED, "own abort")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await own(b"set", timeout=5)
        assert (info.value.code(), info.value.details()) == (grpc.StatusCode.ALREADY_EXISTS, "set code")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await own(b"sleep", timeout=0.2)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        toy.entered.clear()
        call = own(b"sleep", timeout=10)
        await asyncio.wait_for(toy.entered.wait(), 5)
        call.cancel()
        for _ in range(100):  # the server side notices the cancellation
            if any(getattr(r, "grpc_code", None) == "CANCELLED" for r in caplog.records):
                break
            await asyncio.sleep(0.02)
    codes = [
        r.grpc_code  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "method", None) == "kit.test.Echo/OwnStatus" and getattr(r, "grpc_code", None)
    ]
    assert codes == ["PERMISSION_DENIED", "ALREADY_EXISTS", "DEADLINE_EXCEEDED", "CANCELLED"]
    from recsys_core import metrics

    gauge = metrics.IN_FLIGHT.labels("kit-test", "kit.test.Echo/OwnStatus")
    assert gauge._value.get() == 0  # type: ignore[attr-defined]


async def test_health_watch_sees_changes_and_the_stop(make_server: Any) -> None:
    from grpc_health.v1 import health_pb2_grpc

    server = make_server()
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            first = stub.Watch(health_pb2.HealthCheckRequest(service=CATALOG), timeout=10)
            second = stub.Watch(health_pb2.HealthCheckRequest(service=CATALOG), timeout=10)
            NS, S = health_pb2.HealthCheckResponse.NOT_SERVING, health_pb2.HealthCheckResponse.SERVING
            assert (await first.read()).status == NS
            assert (await second.read()).status == NS
            first.cancel()  # one watcher leaving must not deafen the other
            await asyncio.sleep(0.05)
            server.set_serving(True)
            assert (await second.read()).status == S
            await server.stop(grace=0)
            assert (await second.read()).status == NS
    finally:
        await server.stop(grace=0)
