"""A toy catalog server run as a subprocess by test_signals.py (``python toy_server.py``).

Prints ``TOY port <n>`` once serving, ``TOY entered`` when a Describe call starts
(it then takes ``TOY_DELAY`` seconds), and ``TOY on_stop`` from its on_stop callback.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys_core.server import Server, run
from recsys_core.settings import ServerSettings, load_settings

DELAY = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0


def say(text: str) -> None:
    print(f"TOY {text}", flush=True)


class SlowCatalog(catalog_pb2_grpc.CatalogServicer):
    async def Describe(self, request: Any, context: Any) -> Any:
        say("entered")
        await asyncio.sleep(DELAY)
        return catalog_pb2.DescribeResponse(movie_count=42)


async def main() -> None:
    settings = load_settings(ServerSettings, port=0, grace_seconds=10.0, log_level="WARNING")
    server = Server(settings, "toy")
    server.add_service(
        catalog_pb2_grpc.add_CatalogServicer_to_server, SlowCatalog(), "recsys.catalog.v1.Catalog"
    )

    async def closed() -> None:
        say("on_stop")

    server.on_stop(closed)
    await server.start()
    server.set_serving(True)
    say(f"port {server.port}")
    await server.wait_for_signal()
    say("exit")


if __name__ == "__main__":
    run(main, service="toy")
