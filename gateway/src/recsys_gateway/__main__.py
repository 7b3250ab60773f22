"""python -m recsys_gateway: run the gateway with settings from RECSYS_GATEWAY_* variables."""

from __future__ import annotations

from recsys_core.server import run
from recsys_core.settings import load_settings

from .server import serve
from .settings import GatewaySettings


def main() -> None:
    settings = load_settings(GatewaySettings)
    run(lambda: serve(settings))


if __name__ == "__main__":
    main()
