"""``python -m recsys_catalog [serve | migrate | load SOURCE | describe]``.

No arguments (the container's ENTRYPOINT) or ``serve``: settings from RECSYS_CATALOG_*, serve
until SIGTERM. Other arguments are the ``recsys catalog`` subcommands (the migrate Job runs
``python -m recsys_catalog migrate``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from recsys_core.server import run
from recsys_core.settings import load_settings

from recsys_catalog.server import serve
from recsys_catalog.settings import CatalogSettings


async def _main() -> None:
    await serve(load_settings(CatalogSettings))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args == ["serve"]:
        run(_main, service="catalog")
        return 0
    from recsys_catalog.cli import register

    parser = argparse.ArgumentParser(prog="python -m recsys_catalog")
    register(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["catalog", *args])
    return int(ns.func(ns) or 0)


if __name__ == "__main__":
    sys.exit(main())
