"""python -m recsys_embedder: serve with settings from RECSYS_EMBEDDER_* variables."""

from __future__ import annotations

from recsys_core.server import run
from recsys_core.settings import load_settings

from recsys_embedder.settings import EmbedderSettings


async def _main() -> None:
    from recsys_embedder.server import serve

    await serve(load_settings(EmbedderSettings))


def main() -> None:
    run(_main, service="embedder")


if __name__ == "__main__":
    main()
