"""Database administration for tests, benchmarks and ``recsys_catalog.testing``: reach a
server, create and drop throw-away databases, kill connections (fault injection). Not used by
the catalog server itself."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from recsys_catalog.store.pool import CONNECTION_ERRORS
from recsys_catalog.store.sql import statement

SQL_TERMINATE_BACKENDS = statement("terminate_backends")

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at another database (keeps host, user and query such as ``?host=``)."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


async def can_connect(dsn: str, connect_timeout_s: float = 3.0) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=connect_timeout_s)
    except (*CONNECTION_ERRORS, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


# CREATE / DROP DATABASE stay in Python: a database name is an identifier, which cannot be a
# $n parameter, so the statement is built around a name checked against _DB_NAME.


async def create_database(admin_dsn: str, name: str) -> str:
    """CREATE DATABASE ``name`` (a checked identifier, not user input); returns its DSN."""
    if not _DB_NAME.match(name):
        raise ValueError(f"invalid database name {name!r}")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, name: str) -> None:
    if not _DB_NAME.match(name):
        raise ValueError(f"invalid database name {name!r}")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def terminate_backends(admin_dsn: str, database: str) -> int:
    """Kill every other connection to ``database`` (fault-injection in tests)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        return int(await conn.fetchval(SQL_TERMINATE_BACKENDS, database))
    finally:
        await conn.close()
