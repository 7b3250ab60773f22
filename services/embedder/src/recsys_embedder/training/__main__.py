"""``python -m recsys_embedder.training [FLAGS]``: ``recsys train`` where the ``recsys`` CLI
(libs/tools) is not installed, e.g. the train image's Jobs (deploy/README.md, "Release
pipeline"). The same flags and the same function (:mod:`recsys_embedder.training.cli`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    """``recsys train``'s parser, under ``train``."""
    from recsys_embedder.training.cli import register

    parser = argparse.ArgumentParser(prog="python -m recsys_embedder.training")
    register(parser.add_subparsers(dest="command"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    ns = build_parser().parse_args(["train", *args])
    return int(ns.func(ns) or 0)


if __name__ == "__main__":
    sys.exit(main())
