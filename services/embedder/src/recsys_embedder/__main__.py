"""``python -m recsys_embedder [serve | publish ...]``.

No arguments (the container's ENTRYPOINT) or ``serve``: settings from RECSYS_EMBEDDER_*, serve
until SIGTERM. ``publish``: write an artifact's movie vectors into the retriever
(:mod:`recsys_embedder.publish`; the release Job runs it from this image).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from recsys_core.server import run
from recsys_core.settings import load_settings

from recsys_embedder.settings import EmbedderSettings


async def _main() -> None:
    from recsys_embedder.server import serve

    await serve(load_settings(EmbedderSettings))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args == ["serve"]:
        run(_main, service="embedder")
        return 0
    from recsys_embedder.publish import main as publish_main

    return publish_main(args)


if __name__ == "__main__":
    sys.exit(main())
