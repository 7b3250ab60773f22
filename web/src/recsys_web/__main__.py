"""python -m recsys_web: serve the web app with settings from RECSYS_WEB_* variables."""

from __future__ import annotations

import sys

from aiohttp import web
from recsys_core.logs import setup_logging
from recsys_core.settings import SettingsError, load_settings

from .app import create_app
from .settings import RecsysWebSettings


def main() -> None:
    try:
        settings = load_settings(RecsysWebSettings)
    except SettingsError as exc:
        print(f"recsys_web: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging("web", settings.log_level, json=settings.log_json)
    # SIGTERM/SIGINT: stop accepting, let open requests finish (shutdown_timeout), then close the channel.
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.grace_seconds,
        access_log=None,
        print=lambda *_: None,
    )


if __name__ == "__main__":
    main()
