"""``recsys catalog migrate | load | describe | refresh-added | serve`` (settings from RECSYS_CATALOG_*).

Without ``RECSYS_CATALOG_DSN`` every command uses the embedded PostgreSQL under
``RECSYS_CATALOG_DATA_DIR`` (started for the command and stopped after it, unless a running
catalog server already holds it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from recsys_core.errors import RecsysError
from recsys_core.settings import SettingsError, load_settings

from recsys_catalog.settings import CatalogSettings


def register(subparsers: Any) -> None:
    catalog = subparsers.add_parser("catalog", help="catalog database: migrate, load, serve")
    catalog.add_argument("--data-dir", type=Path, default=None, help="embedded PostgreSQL folder (no DSN)")
    sub = catalog.add_subparsers(dest="catalog_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("migrate", help="apply pending schema migrations (idempotent)")
    p.set_defaults(func=_sync(_migrate))

    p = sub.add_parser("load", help="bulk-load a MovieLens data set (one transaction, re-runnable)")
    p.add_argument("source", metavar="NAME|PATH", help="data set name (ml-latest-small), zip or folder")
    p.add_argument("--replace", action="store_true", help="replace all movies, users and ratings")
    p.add_argument("--lenient", action="store_true", help="skip malformed rows instead of failing")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--migrate", action="store_true", help="apply migrations first (always done for the embedded server)"
    )
    p.set_defaults(func=_sync(_load))

    p = sub.add_parser("describe", help="counts, schema version, genres, last load (JSON)")
    p.set_defaults(func=_sync(_describe))

    p = sub.add_parser(
        "refresh-added",
        help="re-embed added movies that got ratings since (RefreshAddedMovies of a running catalog)",
    )
    p.add_argument("--catalog", default="127.0.0.1:50052", help="the catalog server's address")
    p.add_argument("--limit", type=int, default=0, help="movies per call (1..100; 0 = 100)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per call")
    p.add_argument("--json", action="store_true", help="print each response as JSON")
    p.set_defaults(func=_refresh_added)

    p = sub.add_parser("serve", help="run the gRPC server until SIGTERM")
    p.set_defaults(func=_serve)


def _settings(args: argparse.Namespace) -> CatalogSettings:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None) is not None:
        overrides["data_dir"] = args.data_dir
    return load_settings(CatalogSettings, **overrides)


def _sync(
    fn: Callable[[argparse.Namespace, Any, CatalogSettings], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            settings = _settings(args)

            async def main() -> int:
                async with open_store(settings) as store:
                    return await fn(args, store, settings)

            return asyncio.run(main())
        except (RecsysError, SettingsError) as exc:
            print(f"recsys catalog: {exc}", file=sys.stderr)
            return 1

    return run


@asynccontextmanager
async def open_store(settings: CatalogSettings) -> AsyncIterator[Any]:
    """A connected PgStore for ``settings`` (starting/stopping the embedded server if no DSN)."""
    from recsys_catalog.embedded import EmbeddedPostgres
    from recsys_catalog.server import pool_config
    from recsys_catalog.store import PgStore

    embedded = EmbeddedPostgres(settings.data_dir) if settings.embedded else None
    dsn = await embedded.start() if embedded is not None else None
    store = PgStore(pool_config(settings, dsn))
    try:
        await store.open()
        yield store
    finally:
        await store.close()
        if embedded is not None:
            await embedded.stop()


async def _migrate(args: argparse.Namespace, store: Any, settings: CatalogSettings) -> int:
    from recsys_catalog.migrate import migrate

    applied = await migrate(store)
    version = await store.schema_version()
    print(f"applied {applied}; schema version {version}" if applied else f"up to date (version {version})")
    return 0


async def _load(args: argparse.Namespace, store: Any, settings: CatalogSettings) -> int:
    from recsys_catalog.loader import load_source
    from recsys_catalog.migrate import migrate

    if args.migrate or settings.should_migrate_on_start:
        await migrate(store)
    report = await load_source(
        store, args.source, lenient=args.lenient, replace=args.replace, show_progress=not args.no_progress
    )
    print(
        f"loaded {report.dataset_name}: {report.movies} movies, {report.users} users, "
        f"{report.ratings} ratings in {report.seconds:.1f}s" + (" (replaced)" if report.replaced else "")
    )
    return 0


async def _describe(args: argparse.Namespace, store: Any, settings: CatalogSettings) -> int:
    info = await store.describe()
    print(
        json.dumps(
            {
                "movies": info.movie_count,
                "users": info.user_count,
                "ratings": info.rating_count,
                "schema_version": info.schema_version,
                "genres": list(info.genres),
                "dataset_name": info.dataset_name,
                "dataset_sha256": info.dataset_sha256,
                "loaded_at": info.loaded_at.isoformat() if info.loaded_at else None,
            },
            indent=2,
        )
    )
    return 0


def _refresh_added(args: argparse.Namespace) -> int:
    from recsys_catalog.refresh import refresh_added

    return asyncio.run(
        refresh_added(args.catalog, limit=args.limit, call_timeout_s=args.timeout, as_json=args.json)
    )


def _serve(args: argparse.Namespace) -> int:
    from recsys_core.server import run

    from recsys_catalog.server import serve

    async def main() -> None:
        await serve(_settings(args))

    run(main, service="catalog")
    return 0
