"""``python -m recsys_embedder [serve | export ... | publish ... | COMMAND ...]``.

No arguments (the container's ENTRYPOINT) or ``serve``: settings from RECSYS_EMBEDDER_*, serve
until SIGTERM. Other arguments are the ``recsys embedder`` subcommands (the release pipeline's
export Job runs ``python -m recsys_embedder export ...``; deploy/README.md, "Release pipeline").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from recsys_core.server import run
from recsys_core.settings import load_settings

from recsys_embedder.settings import EmbedderSettings


async def _main() -> None:
    from recsys_embedder.server import serve

    await serve(load_settings(EmbedderSettings))


def build_parser() -> argparse.ArgumentParser:
    """The parser of the subcommands: ``recsys embedder``'s, under ``embedder``."""
    from recsys_embedder.cli import register

    parser = argparse.ArgumentParser(prog="python -m recsys_embedder")
    register(parser.add_subparsers(dest="command"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args == ["serve"]:
        run(_main, service="embedder")
        return 0
    ns = build_parser().parse_args(["embedder", *args])
    return int(ns.func(ns) or 0)


if __name__ == "__main__":
    sys.exit(main())
