"""Closed-loop and open-loop unary gRPC load on asyncio, with methods resolved at run time.

Resolution: through the server's reflection (no proto files needed) by asking for the
*method* symbol (``pkg.Service.Method``), as ghz and grpcurl do, and falling back to
the service symbol for servers whose reflection only knows services and messages
(Python's stock grpc_reflection); or from ``proto`` (compiled with grpc_tools.protoc
into a temp dir) / ``protoset`` (a FileDescriptorSet). Request messages are built from
the call data (JSON, protobuf's JSON mapping) once and serialized once; each call sends
the bytes.

Modes:
- closed loop (no rate): ``concurrency`` workers, each sends its next call when its last
  one returned; latency is send -> response.
- open loop (``rps`` or a step/line load schedule): call i is *scheduled* at t0 + its
  slot time (i/rps for a constant rate); up to ``concurrency`` calls are in flight and a
  call that waits for a free worker is sent late. Latency counts from the scheduled time,
  so queueing delay shows in the numbers instead of being hidden (coordinated omission).
  Make ``concurrency`` large enough that the client itself is not the queue you measure.

A run stops by itself: at ``total`` calls or after ``duration``, whichever comes first;
then in-flight calls get until their deadline (``timeout``) to finish, after which they
are cancelled (and not counted).

Only loopback targets are allowed unless ``allow_remote`` is given: load is never sent
somewhere by accident.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from recsys_tools.loadgen.config import (
    DEFAULT_TIMEOUT_S,
    ConfigError,
    LoadConfig,
    LoadSchedule,
    format_duration,
    normalize_call,
)
from recsys_tools.loadgen.report import CallResult, build_report, error_string, status_name

__all__ = [
    "LoadError",
    "ResolvedMethod",
    "check_target",
    "encode_requests",
    "measure",
    "measure_async",
    "resolve_method",
    "run",
    "run_sync",
]


class LoadError(RuntimeError):
    """The run cannot start: target refused or unreachable, method not found, bad call data."""


@dataclass(frozen=True)
class ResolvedMethod:
    """A unary method resolved at run time: its path and its message classes."""

    path: str  # "/package.Service/Method"
    request_class: type[Message]
    response_class: type[Message]
    resolved_by: str  # "method symbol" | "service symbol" | "proto" | "protoset"


# ------------------------------------------------------------------------------------------
# target check


def _host_part(target: str) -> str:
    t = target
    for prefix in ("dns:///", "dns:", "ipv4:", "ipv6:"):
        if t.startswith(prefix):
            t = t[len(prefix) :]
            break
    if t.startswith("["):  # [::1]:50051
        return t[1 : t.index("]")] if "]" in t else t
    if t.count(":") > 1:  # bare IPv6 without port
        return t
    return t.rsplit(":", 1)[0] if ":" in t else t


def check_target(target: str, allow_remote: bool = False) -> None:
    """Refuse a non-loopback target unless ``allow_remote``: a load test goes where it is meant to."""
    if allow_remote or target.startswith(("unix:", "unix-abstract:")):
        return
    host = _host_part(target)
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise LoadError(
        f"refusing to send load to {target!r}: not a loopback address "
        "(pass allow_remote=True / --allow-remote if you mean it)"
    )


# ------------------------------------------------------------------------------------------
# method resolution


def _method_from_pool(pool: descriptor_pool.DescriptorPool, call: str) -> tuple[MethodDescriptor, str]:
    service, method = normalize_call(call)
    try:
        return pool.FindMethodByName(f"{service}.{method}"), "method symbol"
    except KeyError:
        pass
    try:
        svc = pool.FindServiceByName(service)
    except KeyError:
        raise LoadError(f"service {service!r} not found") from None
    found = svc.methods_by_name.get(method)
    if found is None:
        known = ", ".join(sorted(svc.methods_by_name)) or "none"
        raise LoadError(f"method {method!r} not found in {service} (it has: {known})")
    return found, "service symbol"


def _resolved(md: MethodDescriptor, how: str) -> ResolvedMethod:
    if md.client_streaming or md.server_streaming:
        raise LoadError(f"{md.full_name}: streaming methods are not supported (unary only)")
    return ResolvedMethod(
        path=f"/{md.containing_service.full_name}/{md.name}",
        request_class=message_factory.GetMessageClass(md.input_type),
        response_class=message_factory.GetMessageClass(md.output_type),
        resolved_by=how,
    )


def _pool_from_set(fds: descriptor_pb2.FileDescriptorSet) -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for fdp in fds.file:
        pool.Add(fdp)
    return pool


def _compile_proto(proto: str, import_paths: Sequence[str]) -> descriptor_pb2.FileDescriptorSet:
    try:
        import grpc_tools
    except ImportError as exc:  # pragma: no cover - grpcio-tools is a dev dependency
        raise LoadError("proto: needs grpcio-tools (pip install grpcio-tools), or use reflection") from exc
    proto_path = Path(proto).resolve()
    wkt = Path(grpc_tools.__file__).parent / "_proto"
    includes = [*import_paths, str(proto_path.parent), str(Path.cwd()), str(wkt)]
    with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
        out = Path(tmp) / "set.pb"
        # In a child process: protoc writes its errors to the process's stderr.
        cmd = [sys.executable, "-m", "grpc_tools.protoc", *(f"-I{p}" for p in includes)]
        cmd += ["--include_imports", f"--descriptor_set_out={out}", str(proto_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.exists():
            raise LoadError(f"proto: {proto}: protoc failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def resolve_method(
    host: str,
    call: str,
    *,
    proto: str | None = None,
    protoset: str | None = None,
    import_paths: Sequence[str] = (),
    connect_timeout: float = 10.0,
) -> ResolvedMethod:
    """Resolve ``call`` to its path and message classes (blocking; run it in a thread from async code).

    With ``proto`` or ``protoset`` the server is not asked; otherwise its reflection is.
    """
    if protoset:
        fds = descriptor_pb2.FileDescriptorSet.FromString(Path(protoset).read_bytes())
        return _resolved(*_method_from_pool(_pool_from_set(fds), call)[:1], "protoset")
    if proto:
        fds = _compile_proto(proto, import_paths)
        return _resolved(*_method_from_pool(_pool_from_set(fds), call)[:1], "proto")

    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(host) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=connect_timeout)
        except grpc.FutureTimeoutError:
            raise LoadError(f"cannot connect to {host} within {format_duration(connect_timeout)}") from None
        db = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(db)
        try:
            md, how = _method_from_pool(pool, call)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            if code == grpc.StatusCode.UNIMPLEMENTED:
                raise LoadError(f"{host} has no server reflection; give proto or protoset") from None
            raise LoadError(f"reflection on {host} failed: {exc}") from None
        except LoadError as exc:
            try:
                services = ", ".join(db.get_services())
            except grpc.RpcError:
                services = "unknown"
            raise LoadError(f"{exc} on {host} (its services: {services})") from None
        return _resolved(md, how)


def encode_requests(method: ResolvedMethod, data: Sequence[Mapping[str, Any]]) -> list[bytes]:
    """Call data (protobuf JSON mapping) -> serialized requests; a bad message names its index."""
    out = []
    for i, item in enumerate(data):
        msg = method.request_class()
        try:
            json_format.ParseDict(dict(item), msg)
        except json_format.ParseError as exc:
            where = f"data[{i}]" if len(data) > 1 else "data"
            raise LoadError(f"{where}: not a valid {msg.DESCRIPTOR.full_name}: {exc}") from None
        out.append(msg.SerializeToString())
    return out


# ------------------------------------------------------------------------------------------
# the run


class _Slots:
    """Open-loop send times, seconds from t0: i/rps for const, integrated for step/line."""

    def __init__(self, schedule: LoadSchedule) -> None:
        self._schedule = schedule
        self._i = 0
        self._t = 0.0

    def next(self) -> tuple[int, float] | None:
        i, t = self._i, self._t
        s = self._schedule
        if s.kind == "const":
            t = i / s.rps
        else:
            rate = s.rate_at(t)
            if rate <= 0:
                return None
            self._t = t + 1.0 / rate
        self._i += 1
        return i, t


def _options(config: LoadConfig) -> dict[str, Any]:
    """The report's ``options`` object, with ghz's keys (durations in ns)."""
    s = config.schedule
    opts: dict[str, Any] = {
        "call": config.call,
        "host": config.host,
        "insecure": True,
        "load-schedule": s.kind,
        "load-start": s.start,
        "load-end": s.end,
        "load-step": s.step,
        "load-step-duration": int(s.step_duration * 1e9),
        "load-max-duration": int(s.max_duration * 1e9),
        "concurrency": config.concurrency,
        "concurrency-schedule": "const",
        "total": config.total or 0,
        "connections": config.connections,
        "duration": int((config.duration or 0) * 1e9),
        "timeout": int(config.timeout * 1e9),
        "dial-timeout": int(config.connect_timeout * 1e9),
        "data": config.data[0] if len(config.data) == 1 else list(config.data),
        "binary": False,
        "CPUs": os.cpu_count() or 1,
    }
    if s.kind == "const" and s.rps:
        opts["rps"] = s.rps
    if config.proto:
        opts["proto"] = config.proto
    if config.protoset:
        opts["protoset"] = config.protoset
    if config.import_paths:
        opts["import-paths"] = list(config.import_paths)
    if config.metadata:
        opts["metadata"] = config.metadata[0] if len(config.metadata) == 1 else list(config.metadata)
    if config.name:
        opts["name"] = config.name
    if config.skip_first:
        opts["skipFirst"] = config.skip_first
    if config.compression:
        opts["enable-compression"] = True
    return opts


def _channel_options(config: LoadConfig) -> list[tuple[str, Any]]:
    opts: list[tuple[str, Any]] = [
        ("grpc.use_local_subchannel_pool", 1),  # `connections` channels = that many TCP connections
        ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.enable_retries", 0),
    ]
    if config.keepalive > 0:
        opts.append(("grpc.keepalive_time_ms", int(config.keepalive * 1000)))
    return opts


async def run(config: LoadConfig, *, allow_remote: bool = False, details: bool = False) -> dict[str, Any]:
    """Run one load test; return ghz's JSON report as a dict (see report.build_report)."""
    if config.total is None and not config.duration:
        raise ConfigError("total: unbounded (None) needs a duration, or the run would never stop")
    if config.concurrency < 1 or config.connections < 1:
        raise ConfigError("concurrency and connections: must be >= 1")
    check_target(config.host, allow_remote)
    method = await asyncio.to_thread(
        resolve_method,
        config.host,
        config.call,
        proto=config.proto,
        protoset=config.protoset,
        import_paths=config.import_paths,
        connect_timeout=config.connect_timeout,
    )
    requests = encode_requests(method, config.data)
    metadata = [tuple(md.items()) for md in config.metadata] or [()]
    compression = grpc.Compression.Gzip if config.compression else None

    channels = [
        grpc.aio.insecure_channel(config.host, options=_channel_options(config), compression=compression)
        for _ in range(config.connections)
    ]
    try:
        try:
            await asyncio.wait_for(
                asyncio.gather(*(ch.channel_ready() for ch in channels)), timeout=config.connect_timeout
            )
        except TimeoutError:
            raise LoadError(
                f"cannot connect to {config.host} within {format_duration(config.connect_timeout)}"
            ) from None
        callables = [
            ch.unary_unary(
                method.path, request_serializer=None, response_deserializer=method.response_class.FromString
            )
            for ch in channels
        ]
        results, total_ns, reason, start_ns = await _drive(config, callables, requests, metadata)
    finally:
        for ch in channels:
            await ch.close(None)
    return build_report(
        results,
        total_ns=total_ns,
        start_ns=start_ns,
        options=_options(config),
        end_reason=reason,
        name=config.name,
        tags=config.tags,
        skip_first=config.skip_first,
        details=details,
    )


async def _drive(
    config: LoadConfig,
    callables: Sequence[grpc.aio.UnaryUnaryMultiCallable],
    requests: Sequence[bytes],
    metadata: Sequence[tuple[tuple[str, str], ...]],
) -> tuple[list[CallResult], int, str, int]:
    results: list[CallResult] = []
    timeout = config.timeout if config.timeout > 0 else None
    n_req, n_md, n_ch = len(requests), len(metadata), len(callables)
    total = config.total
    open_loop = config.schedule.open_loop
    slots = _Slots(config.schedule) if open_loop else None
    clock = time.perf_counter_ns
    wall_offset = time.time_ns() - clock()
    t0 = clock()
    deadline = t0 + int(config.duration * 1e9) if config.duration else None
    issued = 0
    stop_reason = "normal"
    stopped = False

    async def call_once(i: int, fn: grpc.aio.UnaryUnaryMultiCallable, started: int) -> None:
        md = metadata[i % n_md]
        try:
            await fn(requests[i % n_req], timeout=timeout, metadata=md or None)
        except grpc.aio.AioRpcError as exc:
            status = status_name(exc.code())
            err = error_string(exc.code(), exc.details())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # e.g. a response that does not parse
            status = status_name(grpc.StatusCode.UNKNOWN)
            err = error_string(grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}: {exc}")
        else:
            status, err = "OK", ""
        results.append(CallResult(started + wall_offset, clock() - started, status, err))

    async def closed_worker(w: int) -> None:
        nonlocal issued, stop_reason, stopped
        fn = callables[w % n_ch]
        while not stopped:
            if total is not None and issued >= total:
                return
            now = clock()
            if deadline is not None and now >= deadline:
                stop_reason, stopped = "timeout", True
                return
            i = issued
            issued += 1
            await call_once(i, fn, now)

    async def open_worker(w: int) -> None:
        nonlocal issued, stop_reason, stopped
        assert slots is not None
        fn = callables[w % n_ch]
        while not stopped:
            if total is not None and issued >= total:
                return
            slot = slots.next()
            if slot is None:
                stopped = True
                return
            i, t_rel = slot
            scheduled = t0 + int(t_rel * 1e9)
            if deadline is not None and scheduled >= deadline:
                stop_reason, stopped = "timeout", True
                return
            issued += 1
            delay = scheduled - clock()
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            await call_once(i, fn, scheduled)

    worker = open_worker if open_loop else closed_worker
    n_workers = config.concurrency if total is None else min(config.concurrency, total)
    tasks = [asyncio.create_task(worker(w)) for w in range(n_workers)]
    try:
        if deadline is None:
            await asyncio.gather(*tasks)
        else:
            grace = (timeout or 0.0) + 1.0
            wait_until = (deadline - clock()) / 1e9 + grace
            done, pending = await asyncio.wait(tasks, timeout=max(wait_until, 0.0))
            for t in done:
                t.result()
            if pending:
                stop_reason = "timeout"
                for t in pending:
                    t.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    total_ns = clock() - t0
    return results, total_ns, stop_reason, t0 + wall_offset


def run_sync(config: LoadConfig, *, allow_remote: bool = False, details: bool = False) -> dict[str, Any]:
    """:func:`run` from synchronous code (starts its own event loop)."""
    return asyncio.run(run(config, allow_remote=allow_remote, details=details))


# ------------------------------------------------------------------------------------------
# the in-process bench API


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    dist = {float(d["percentage"]): d["latency"] for d in report["latencyDistribution"] or []}
    errors = sum(report["errorDistribution"].values())

    def ms(ns: float | None) -> float | None:
        return None if ns is None else ns / 1e6

    opts = report["options"]
    return {
        "target": opts["host"],
        "call": opts["call"],
        "concurrency": opts["concurrency"],
        "target_rps": opts.get("rps"),
        "count": report["count"],
        "ok": report["statusCodeDistribution"].get("OK", 0),
        "errors": errors,
        "rps": report["rps"],
        "average_ms": ms(report["average"]),
        "fastest_ms": ms(report["fastest"]),
        "slowest_ms": ms(report["slowest"]),
        "p50_ms": ms(dist.get(50.0)),
        "p90_ms": ms(dist.get(90.0)),
        "p99_ms": ms(dist.get(99.0)),
        "p999_ms": ms(dist.get(99.9)),
        "status_codes": dict(report["statusCodeDistribution"]),
        "report": report,
    }


async def measure_async(
    target: str,
    call: str,
    data: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    concurrency: int,
    duration: float,
    *,
    rps: float | None = None,
    total: int | None = None,
    metadata: Mapping[str, str] | None = None,
    call_timeout: float = DEFAULT_TIMEOUT_S,
    connections: int = 1,
    skip_first: int = 0,
    allow_remote: bool = False,
) -> dict[str, Any]:
    """Load ``target`` with ``call`` for ``duration`` seconds (or ``total`` calls, whichever first).

    ``data``: one request (a dict in protobuf's JSON mapping) or a list sent round-robin.
    Closed loop at ``concurrency`` unless ``rps`` is given (open loop, ``concurrency`` =
    the most calls in flight). Returns a flat summary (``count``, ``ok``, ``errors``,
    ``rps``, ``average_ms``, ``p50_ms``, ``p90_ms``, ``p99_ms``, ``p999_ms``,
    ``status_codes``...) plus the full ghz-shaped ``report``. ``call_timeout``: per-call
    deadline in seconds (0 = none).
    """
    if data is None:
        items: tuple[dict[str, Any], ...] = ({},)
    elif isinstance(data, Mapping):
        items = (dict(data),)
    else:
        items = tuple(dict(d) for d in data)
        if not items:
            raise ConfigError("data: the list of requests must not be empty")
    if concurrency < 1:
        raise ConfigError("concurrency: must be >= 1")
    if duration <= 0 and not total:
        raise ConfigError("duration: must be > 0 (or give total)")
    config = LoadConfig(
        call=call,
        host=target,
        data=items,
        metadata=(dict(metadata),) if metadata else (),
        total=total,
        concurrency=concurrency,
        connections=connections,
        schedule=LoadSchedule(rps=rps or 0.0),
        duration=duration if duration > 0 else None,
        timeout=call_timeout,
        skip_first=skip_first,
    )
    normalize_call(call)
    return _summary(await run(config, allow_remote=allow_remote))


def measure(
    target: str,
    call: str,
    data: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    concurrency: int,
    duration: float,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`measure_async` from synchronous code (its own event loop; not inside a running loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(measure_async(target, call, data, concurrency, duration, **kwargs))
    raise RuntimeError("measure() called inside a running event loop: await measure_async(...) instead")
