"""Numbered forward-only SQL migrations shipped in ``recsys_catalog/migrations/``.

``NNNN_name.sql`` files are applied in order by ``recsys catalog migrate`` (each in its own
transaction, recorded in ``catalog_schema_migrations``; re-running is a no-op). The server
needs at least ``REQUIRED_SCHEMA_VERSION`` and refuses to serve against an older schema.
"""

from __future__ import annotations

import re
from importlib import resources

from recsys_catalog.store import Migration, PgStore

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def load_migrations() -> list[Migration]:
    """The packaged migrations, in version order."""
    found: list[Migration] = []
    for entry in resources.files("recsys_catalog.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


REQUIRED_SCHEMA_VERSION = len(load_migrations())


async def migrate(store: PgStore) -> list[int]:
    """Apply the pending migrations; returns the versions applied (empty: up to date)."""
    return await store.apply_migrations(load_migrations())
