"""``recsys retriever serve|describe``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from recsys_retriever.servicer import SERVICE_NAME

#: RetrieverSettings' default port (the settings module imports no pymilvus)
DEFAULT_PORT = 50054


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("retriever", help="vector store: describe, serve")
    sub = p.add_subparsers(dest="retriever_command", metavar="COMMAND", required=True)
    serve = sub.add_parser("serve", help="run the retriever gRPC server (settings: RECSYS_RETRIEVER_*)")
    serve.set_defaults(func=_serve)
    desc = sub.add_parser("describe", help="print a running retriever's collections as JSON")
    desc.add_argument(
        "--target",
        default=f"127.0.0.1:{DEFAULT_PORT}",
        help=f"host:port of the retriever (default 127.0.0.1:{DEFAULT_PORT}, as `recsys up` runs it)",
    )
    desc.add_argument("--timeout", type=float, default=10.0)
    desc.set_defaults(func=_describe)


def _serve(args: argparse.Namespace) -> int:
    from recsys_retriever.__main__ import cli_main

    cli_main()
    return 0


def _describe(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf.json_format import MessageToDict
    from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc

    async def go() -> dict[str, object]:
        async with grpc.aio.insecure_channel(args.target) as channel:
            stub = retriever_pb2_grpc.RetrieverStub(channel)
            resp = await stub.Describe(retriever_pb2.DescribeRequest(), timeout=args.timeout)
            return MessageToDict(resp, always_print_fields_with_no_presence=True)

    try:
        out = asyncio.run(go())
    except grpc.aio.AioRpcError as exc:
        print(f"{SERVICE_NAME}.Describe failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2))
    return 0
