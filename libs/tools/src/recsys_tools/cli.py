"""The `recsys` command: one entry point, subcommands contributed by packages.

Each subcommand lives in the package that owns it and is imported lazily, so
the CLI works with only some packages installed (a catalog image has no
torch): a missing package gives a clear message instead of an ImportError.
A contributing module exposes ``register(subparsers) -> None`` that adds its
parsers and sets ``func`` (``(args) -> int``) on each of them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

# module -> (package a user installs to get it, top-level commands it adds, help)
COMMANDS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "recsys_data.cli": ("recsys-core", ("data",), "fetch, inspect and generate MovieLens data sets"),
    "recsys_catalog.cli": ("recsys-catalog", ("catalog",), "catalog database: migrate, load, serve"),
    "recsys_embedder.training.cli": ("recsys-embedder[train]", ("train",), "train PinSage and two-tower"),
    "recsys_embedder.evaluation.cli": ("recsys-embedder[train]", ("evaluate",), "offline evaluation"),
    "recsys_retriever.cli": ("recsys-retriever", ("retriever",), "vector store: serve, describe"),
    "recsys_embedder.cli": ("recsys-embedder", ("embedder",), "embedder: serve, export, publish"),
    "recsys_gateway.cli": ("recsys-gateway", ("gateway",), "gateway: serve"),
    "recsys_tools.stack": ("recsys-core", ("up", "down", "status", "supervise", "stack"), "the whole stack"),
    "recsys_tools.loadgen.cli": (
        "recsys-core",
        ("load",),
        "load-test with a ghz config (Python load generator)",
    ),
    "recsys_tools.client_cli": (
        "recsys-core",
        ("recommend", "similar", "search", "movies", "quiz", "genres", "rate"),
        "call the gateway",
    ),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Only the module of the command being run is imported (``recsys --help`` imports none)."""
    parser = argparse.ArgumentParser(prog="recsys", description="recsys: a gRPC movie recommender")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for module_name, (dist, names, help_text) in COMMANDS.items():
        if wanted not in names:
            for name in names:
                sub.add_parser(name, help=help_text, add_help=False)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if missing and module_name.startswith(missing):
                # The contributing package is not installed.
                for name in names:
                    p = sub.add_parser(name, help=f"{help_text} (needs {dist})")
                    p.set_defaults(func=_missing(name, dist))
                continue
            raise
        module.register(sub)
    return parser


def _missing(name: str, dist: str):
    def run(_args: argparse.Namespace) -> int:
        print(f"recsys {name}: not available, install {dist}", file=sys.stderr)
        return 2

    return run


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `recsys recommend ... | head`: the reader left. Quietly, as a shell tool would (exit
        # 128 + SIGPIPE); stdout goes to /dev/null so the interpreter's final flush stays silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
