#!/usr/bin/env python
"""Regenerate the Python gRPC code (with .pyi stubs) from protos/.

Usage: python scripts/gen_protos.py [--out DIR]

The one codegen command of the project. Output goes to libs/api/src (the
importable ``recsys`` package, e.g. ``recsys.catalog.v1.catalog_pb2``); a test
runs this into a temporary directory and fails if the committed code differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = ROOT / "libs" / "api" / "src"


def generate(out: Path) -> list[Path]:
    """Generate code for every .proto under protos/ into ``out``; return written files."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.rglob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_ROOT}")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *protos,
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    written: list[Path] = []
    # Make every generated folder a regular package (mypy and setuptools need it).
    for proto in protos:
        pkg_dir = (out / proto).parent
        while pkg_dir != out:
            init = pkg_dir / "__init__.py"
            if not init.exists():
                init.write_text("")
            written.append(init)
            pkg_dir = pkg_dir.parent
    for proto in protos:
        stem = proto[: -len(".proto")]
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            written.append(out / f"{stem}{suffix}")
    (out / "recsys" / "py.typed").write_text("")
    written.append(out / "recsys" / "py.typed")
    return sorted(set(written))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    files = generate(args.out)
    print(f"generated {len(files)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
