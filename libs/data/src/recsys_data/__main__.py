"""``python -m recsys_data COMMAND ...``: the ``recsys data`` subcommands (fetch, summary, ...)
where the ``recsys`` CLI (libs/tools) is not installed, e.g. the release pipeline's fetch init
containers: ``python -m recsys_data fetch NAME --dest DIR`` (checksum-verified, keeps a file that
verifies). The same flags and functions (:mod:`recsys_data.cli`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """``recsys data``'s parser, under ``data``."""
    from recsys_data.cli import register

    parser = argparse.ArgumentParser(prog="python -m recsys_data")
    register(parser.add_subparsers(dest="command"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    ns = build_parser().parse_args(["data", *args])
    return int(ns.func(ns) or 0)


if __name__ == "__main__":
    sys.exit(main())
