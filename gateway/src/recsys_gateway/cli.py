"""`recsys gateway serve`: run the gateway (settings from RECSYS_GATEWAY_* variables)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gateway", help="gateway: the public gRPC API")
    gsub = p.add_subparsers(dest="gateway_command", required=True)
    s = gsub.add_parser("serve", help="run the gateway (same as python -m recsys_gateway)")
    s.set_defaults(func=_serve)


def _serve(_args: argparse.Namespace) -> int:
    from .__main__ import main

    main()
    return 0
