"""recsys_core.app.App: the one application shape (issue #17): connect with backoff behind
NOT_SERVING, checks that flip health and reconnect, a fatal start-up connect, drain and close."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2
from recsys_core.app import App, DependencySettings
from recsys_core.errors import DependencyUnavailable
from recsys_core.settings import SettingsError, load_settings
from recsys_core.testing import health_status, test_settings

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Toy(App):
    dependency = "toy store"

    def __init__(self, fail_connects: int = 0, **kw: float) -> None:
        super().__init__(
            test_settings(DependencySettings),
            "toy",
            retry_initial_s=0.01,
            retry_max_s=0.02,
            check_interval_s=kw.get("check_interval_s", 0.02),
        )
        self.fail_connects = fail_connects
        self.calls: list[str] = []
        self.failures: list[BaseException] = []
        self.healthy = True
        self.release = asyncio.Event()
        self.release.set()

    async def connect(self) -> None:
        self.calls.append("connect")
        await self.release.wait()
        if self.fail_connects > 0:
            self.fail_connects -= 1
            raise DependencyUnavailable("toy", "not yet")

    def connect_failed(self, exc: BaseException) -> None:
        self.failures.append(exc)

    async def connected(self) -> None:
        self.calls.append("connected")

    async def check(self) -> bool:
        return self.healthy

    async def lost(self) -> None:
        self.calls.append("lost")

    async def close(self) -> None:
        self.calls.append("close")


async def _until(cond, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_not_serving_until_connect_succeeds_then_serving() -> None:
    app = Toy(fail_connects=3)
    app.release.clear()
    port = await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            assert await health_status(ch, "") == NOT_SERVING
            app.release.set()
            await app.wait_ready(5)
            assert await health_status(ch, "") == SERVING
        assert app.calls[:5] == ["connect"] * 4 + ["connected"]
        assert len(app.failures) == 3 and all(isinstance(e, DependencyUnavailable) for e in app.failures)
    finally:
        await app.stop(0)
    assert app.calls[-1] == "close"


async def test_a_failed_check_turns_not_serving_and_reconnects_with_backoff() -> None:
    app = await Toy.started()
    try:
        await app.wait_ready(5)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
            app.fail_connects = 2
            app.healthy = False
            await _until(lambda: "lost" in app.calls)
            assert await health_status(ch, "") == NOT_SERVING
            app.healthy = True
            await _until(lambda: app.calls.count("connected") == 2)
            assert await health_status(ch, "") == SERVING
        after_lost = app.calls[app.calls.index("lost") :]
        assert after_lost == ["lost", "connect", "connect", "connect", "connected"]
        assert app.calls.count("lost") == 1
    finally:
        await app.stop(0)


async def test_a_raising_check_counts_as_a_failed_one() -> None:
    class Raising(Toy):
        async def check(self) -> bool:
            if not self.healthy:
                raise OSError("connection reset")
            return True

    app = await Raising.started()
    try:
        await app.wait_ready(5)
        app.healthy = False
        await _until(lambda: "lost" in app.calls)
        app.healthy = True
        await _until(lambda: app.calls.count("connected") == 2)
    finally:
        await app.stop(0)


async def test_connect_in_start_fails_start_and_stops_the_server() -> None:
    class Fatal(Toy):
        connect_in_start = True

    app = Fatal(fail_connects=1)
    with pytest.raises(DependencyUnavailable, match="not yet"):
        await app.start()
    assert not app.ready.is_set()
    assert app.calls[-1] == "close"  # the server's stop ran the close hook


async def test_stop_cancels_background_tasks_before_close() -> None:
    app = await Toy.started(check_interval_s=0)
    forever = asyncio.Event()
    task = app.spawn(forever.wait(), name="toy-forever")
    await app.wait_ready(5)
    await app.stop(0)
    assert task.cancelled()
    assert app.calls[-1] == "close"


def test_dependency_settings_refuse_a_backoff_that_shrinks(monkeypatch: pytest.MonkeyPatch) -> None:
    class ToySettings(DependencySettings):
        model_config = DependencySettings.model_config | {"env_prefix": "RECSYS_TOY_"}

    monkeypatch.setenv("RECSYS_TOY_CONNECT_RETRY_INITIAL_S", "20")
    monkeypatch.setenv("RECSYS_TOY_CONNECT_RETRY_MAX_S", "5")
    with pytest.raises(SettingsError, match="connect_retry_initial_s must be <= connect_retry_max_s"):
        load_settings(ToySettings)
