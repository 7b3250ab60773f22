"""python -m recsys_web: serve the web app with settings from RECSYS_WEB_* variables.

Bad settings exit with status 2 and a message naming the variable (no traceback); SIGTERM/SIGINT
drain open requests (``grace_seconds``) and close the gateway channel.
"""

from __future__ import annotations

from recsys_core.logs import setup_logging
from recsys_core.server import run
from recsys_core.settings import load_settings

from .server import WebApp
from .settings import RecsysWebSettings


async def _main() -> None:
    # Loaded inside run(): a SettingsError becomes exit status 2 with its message.
    settings = load_settings(RecsysWebSettings)
    setup_logging("web", settings.log_level, json=settings.log_json)
    await WebApp(settings).serve()


def main() -> None:
    run(_main, service="web")


if __name__ == "__main__":
    main()
