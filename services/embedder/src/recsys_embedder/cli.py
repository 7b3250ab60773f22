"""``recsys embedder serve|export|publish``."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("embedder", help="embedder: serve, export, publish")
    sub = p.add_subparsers(dest="embedder_command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the gRPC server (settings from RECSYS_EMBEDDER_* variables)")
    serve.set_defaults(func=_serve)

    exp = sub.add_parser("export", help="export the query network to ONNX and a Triton model repository")
    exp.add_argument("--artifact-dir", default="./artifacts", help="artifact root or version folder")
    exp.add_argument("--version", default="", help="artifact version (default: latest)")
    exp.add_argument("--out", default="deploy/triton", help="model repository folder")
    exp.add_argument("--name", default="recsys_query", help="Triton model name")
    exp.add_argument(
        "--kind",
        choices=("onnx", "python"),
        default="onnx",
        help="onnx: onnxruntime backend on a GPU (production); python: python backend + onnxruntime on CPU",
    )
    exp.add_argument("--max-batch-size", type=int, default=256)
    exp.add_argument("--instance-kind", choices=("KIND_GPU", "KIND_CPU"), default=None)
    exp.add_argument("--instances", type=int, default=1)
    exp.set_defaults(func=_export)

    from recsys_embedder.publish import register as register_publish

    register_publish(sub)
    p.set_defaults(func=lambda _a: (p.print_help(), 2)[1])


def _serve(_args: argparse.Namespace) -> int:
    from recsys_embedder.__main__ import main

    return main([])


def _export(args: argparse.Namespace) -> int:
    from recsys_embedder.artifacts import ArtifactError, load_artifact
    from recsys_embedder.export import write_model_repository

    try:
        art = load_artifact(args.artifact_dir, args.version or None)
    except ArtifactError as exc:
        print(f"recsys embedder export: {exc}", file=sys.stderr)
        return 1
    site: list[str] | None = None
    if args.kind == "python":
        from recsys_embedder.backends.triton_local import site_packages

        site = site_packages()
    model_dir = write_model_repository(
        art,
        args.out,
        name=args.name,
        kind=args.kind,
        max_batch_size=args.max_batch_size,
        instance_kind=args.instance_kind,
        instance_count=args.instances,
        site_packages=site,
    )
    print(f"exported artifact {art.version} (dim {art.dimension}) to {model_dir}")
    return 0
