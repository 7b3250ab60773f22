"""``python -m recsys_catalog``: settings from RECSYS_CATALOG_*, serve until SIGTERM."""

from __future__ import annotations

from recsys_core.server import run
from recsys_core.settings import load_settings

from recsys_catalog.server import serve
from recsys_catalog.settings import CatalogSettings


async def _main() -> None:
    await serve(load_settings(CatalogSettings))


def main() -> None:
    run(_main, service="catalog")


if __name__ == "__main__":
    main()
