"""python -m recsys_gateway: run the gateway with settings from RECSYS_GATEWAY_* variables.

Bad or missing settings exit with status 2 and a message naming the variable (no traceback).
"""

from __future__ import annotations

from recsys_core.server import run
from recsys_core.settings import load_settings

from .server import serve
from .settings import GatewaySettings


async def _main() -> None:
    # Loaded inside run(): a SettingsError becomes exit status 2 with its message.
    await serve(load_settings(GatewaySettings))


def main() -> None:
    run(_main, service="gateway")


if __name__ == "__main__":
    main()
