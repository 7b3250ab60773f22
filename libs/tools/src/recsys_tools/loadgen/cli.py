"""`recsys load ...`: the load generator under the recsys command (`python -m recsys_tools.loadgen`)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "load",
        help="load-test a server from a ghz JSON config (ghz's report shape)",
        add_help=False,
        prefix_chars="\x00",  # pass every argument through to the load generator's own parser
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from .__main__ import main

    return main(args.rest)
