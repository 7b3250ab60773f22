"""A PostgreSQL crash under a running catalog (issue 16, item 2).

Owned (embedded, no DSN): SIGKILL the postmaster → NOT_SERVING, then SERVING again within a
bound without anyone restarting the catalog; a rating acknowledged before the crash is still
there (WAL crash recovery) and reads work. Not owned (a DSN): the catalog never starts a server
itself, goes NOT_SERVING, and recovers by itself once the server is back.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from recsys.catalog.v1 import catalog_pb2 as pb
from recsys.catalog.v1 import catalog_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys_catalog.embedded import EmbeddedPostgres
from recsys_catalog.servicer import SERVICE_NAME
from recsys_catalog.store import can_connect
from recsys_catalog.testing import catalog_server, prepare_catalog
from recsys_core.testing import health_status

from .conftest import initialised_embedded_dir

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
RECOVERY_BOUND_S = 30.0
USER = 987654


@pytest.fixture
def embedded_dir(tmp_path: Path) -> Path:
    return initialised_embedded_dir(tmp_path / "pg")


async def _wait_status(ch: grpc.aio.Channel, want: int, bound: float) -> float:
    began = time.monotonic()
    while time.monotonic() - began < bound:
        try:
            if await health_status(ch, SERVICE_NAME, timeout=2) == want:
                return time.monotonic() - began
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"health not {want} within {bound}s")


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


async def _record(stub: catalog_pb2_grpc.CatalogStub, movie_id: int) -> None:
    await stub.RecordRatings(
        pb.RecordRatingsRequest(
            ratings=[common_pb2.Rating(user_id=USER, movie_id=movie_id, rating=4.5)],
            create_missing_users=True,
        ),
        timeout=10,
    )


async def _history(stub: catalog_pb2_grpc.CatalogStub) -> list[int]:
    resp = await stub.GetUserHistory(pb.GetUserHistoryRequest(user_id=USER), timeout=10)
    return sorted(r.movie_id for r in resp.ratings)


async def test_owned_postmaster_sigkill_is_healed(embedded_dir: Path, dataset_dir: Path) -> None:
    async with catalog_server(
        None, dataset=dataset_dir, data_dir=embedded_dir, health_check_interval_s=0.2
    ) as (app, port):
        assert app.embedded is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = catalog_pb2_grpc.CatalogStub(ch)
            await _record(stub, 1)  # acknowledged before the crash
            old_pid = app.embedded.pid
            assert old_pid is not None

            _kill(old_pid)
            await _wait_status(ch, NOT_SERVING, 5)
            took = await _wait_status(ch, SERVING, RECOVERY_BOUND_S)
            print(f"embedded PostgreSQL healed {took:.1f}s after NOT_SERVING")
            assert app.embedded.pid != old_pid and app.restarts == 1

            assert await _history(stub) == [1]  # the acknowledged write survived
            resp = await stub.GetMovies(pb.GetMoviesRequest(movie_ids=[1, 2]), timeout=10)
            assert [m.movie_id for m in resp.movies] == [1, 2]
            await _record(stub, 2)  # writes work again on the reopened pool
            assert await _history(stub) == [1, 2]

            _kill(app.embedded.pid or 0)  # and a second crash heals too
            await _wait_status(ch, NOT_SERVING, 5)
            await _wait_status(ch, SERVING, RECOVERY_BOUND_S)
            assert await _history(stub) == [1, 2] and app.restarts == 2
    assert not app.embedded.running  # stopped on drain


async def test_stale_postmaster_pid_is_removed(embedded_dir: Path) -> None:
    """A postmaster.pid naming a dead pid (host crash, SIGKILL) does not block the next start."""
    pg = EmbeddedPostgres(embedded_dir)
    dsn = pg.start_sync()
    pid = pg.pid
    assert pid is not None
    _kill(pid)
    for _ in range(100):
        if pg.crashed:
            break
        await asyncio.sleep(0.05)
    assert pg.crashed and (embedded_dir / "postmaster.pid").exists()
    pg.forget_sync()
    for _ in range(3):  # orphaned backends may hold the shared memory for a moment
        try:
            dsn = pg.start_sync()
            break
        except Exception:
            await asyncio.sleep(1)
    try:
        assert pg.pid != pid and not pg.crashed and await can_connect(dsn)
    finally:
        pg.stop_sync()


async def test_not_owned_database_recovers_when_it_returns(embedded_dir: Path, dataset_dir: Path) -> None:
    """With a DSN the catalog does not own the server: after it dies the catalog keeps retrying
    (NOT_SERVING) and serves again once someone else brings it back."""
    pg = EmbeddedPostgres(embedded_dir)
    dsn = pg.start_sync()
    try:
        await prepare_catalog(dsn, dataset_dir)
        async with catalog_server(dsn, health_check_interval_s=0.2) as (app, port):
            assert app.embedded is None
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                stub = catalog_pb2_grpc.CatalogStub(ch)
                await _record(stub, 3)
                _kill(pg.pid or 0)
                await _wait_status(ch, NOT_SERVING, 5)
                await asyncio.sleep(1.0)
                assert await health_status(ch, SERVICE_NAME) == NOT_SERVING  # nobody restarted it
                assert pg.crashed
                pg.forget_sync()
                for _ in range(3):
                    try:
                        assert pg.start_sync() == dsn  # same socket dir: same DSN
                        break
                    except AssertionError:
                        raise
                    except Exception:
                        await asyncio.sleep(1)
                await _wait_status(ch, SERVING, RECOVERY_BOUND_S)
                assert await _history(stub) == [3]
    finally:
        pg.stop_sync()
