"""``python -m recsys_retriever``: settings from RECSYS_RETRIEVER_*, serve until SIGTERM."""

from __future__ import annotations

from recsys_core.server import run
from recsys_core.settings import load_settings

from recsys_retriever.server import RetrieverApp
from recsys_retriever.settings import RetrieverSettings


async def main() -> None:
    await RetrieverApp(load_settings(RetrieverSettings)).serve()


def cli_main() -> None:
    run(main, service="retriever")


if __name__ == "__main__":
    cli_main()
