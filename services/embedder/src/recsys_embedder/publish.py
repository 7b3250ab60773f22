"""Publish an artifact's movie vectors to the retriever (issue #18: one ordered release).

``python -m recsys_embedder publish --artifact DIR --retriever ADDR --catalog ADDR [--no-activate]``,
``python -m recsys_embedder activate --artifact DIR --retriever ADDR`` (the release's last step),
``python -m recsys_embedder triton-load --triton URL --model NAME --artifact DIR`` (Triton's
repository API, ``backends/triton_repository.py``),
``python -m recsys_embedder switch --artifact DIR --embedders dns:///embedder-pods:50051
[--retriever ADDR]`` (every embedder pod ``Reload``-s the artifact's version, hot)
(also ``recsys embedder publish`` and, for the local stack, ``recsys stack load``). The embedder
owns the artifact format, so this is where the movie vectors are read: PinSage's, and the
two-tower model's when the artifact has one. Each space's vectors go into the retriever version
``recsys_core.validation.vector_version(model version)`` — the version the gateway searches for
a query vector of that model — in chunks of one Upsert stream; the year and genres the
retriever filters on come from the catalog (ListMovies, a page at a time).

Idempotent: a version already complete in the retriever is not written again. ``--no-activate``
leaves the spaces' aliases alone (the release order: publish, switch the embedders, then
activate; see deploy/README.md "Releasing a model").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
from recsys.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from recsys.common.v1 import common_pb2
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from recsys_core.validation import vector_version

from recsys_embedder.artifacts import MANIFEST, ArtifactError, resolve

T = TypeVar("T")

CHUNK = 1000
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: the artifact's model sections that carry movie vectors, and their retriever space
SPACES = (("pinsage", common_pb2.VECTOR_SPACE_PINSAGE), ("two_tower", common_pb2.VECTOR_SPACE_TWO_TOWER))


@dataclass(frozen=True)
class SpaceVectors:
    space: common_pb2.VectorSpace
    embeddings_file: Path
    ids_file: Path


@dataclass(frozen=True)
class PublishPlan:
    """What an artifact folder publishes: its model version, the retriever version, the spaces."""

    artifact: Path
    model_version: str
    version: str
    spaces: tuple[SpaceVectors, ...]


def plan(artifact: str | Path) -> PublishPlan:
    """Read an artifact folder (or root / ``latest`` pointer) without touching any server."""
    folder = resolve(artifact)
    manifest = json.loads((folder / MANIFEST).read_text())
    model_version = str(manifest["version"])
    models = manifest.get("models", {})
    spaces = []
    for key, space in SPACES:
        files = models.get(key, {}).get("files", {})
        if files.get("item_embeddings") and files.get("movie_ids"):
            spaces.append(SpaceVectors(space, folder / files["item_embeddings"], folder / files["movie_ids"]))
    if not spaces:
        raise ArtifactError(f"{folder}: the manifest lists no movie vectors")
    return PublishPlan(folder, model_version, vector_version(model_version), tuple(spaces))


async def catalog_movie_meta(
    catalog: str,
    *,
    timeout: float = 60.0,  # noqa: ASYNC109 (a per-call gRPC deadline)
) -> dict[int, tuple[int, list[str]]]:
    """movie id -> (year, genres) for every catalog movie, read a page at a time."""
    meta: dict[int, tuple[int, list[str]]] = {}
    async with grpc.aio.insecure_channel(catalog) as channel:
        stub = catalog_pb2_grpc.CatalogStub(channel)
        after = 0
        while True:
            page = await stub.ListMovies(
                catalog_pb2.ListMoviesRequest(after_id=after, page_size=5000), timeout=timeout
            )
            for m in page.movies:
                meta[m.movie_id] = (m.year, list(m.genres))
            if not page.next_after_id:
                return meta
            after = page.next_after_id


async def _chunks(
    space: common_pb2.VectorSpace,
    version: str,
    vectors: np.ndarray,
    ids: np.ndarray,
    meta: dict[int, tuple[int, list[str]]],
) -> AsyncIterator[retriever_pb2.UpsertRequest]:
    for start in range(0, len(ids), CHUNK):
        items = []
        for mid, vec in zip(ids[start : start + CHUNK], vectors[start : start + CHUNK], strict=True):
            year, genres = meta.get(int(mid), (0, []))
            items.append(
                retriever_pb2.VectorItem(
                    movie_id=int(mid), vector=common_pb2.Vector(values=vec), year=year, genres=genres
                )
            )
        yield retriever_pb2.UpsertRequest(
            space=space, version=version, dimension=int(vectors.shape[1]), items=items
        )


async def publish(
    artifact: str | Path,
    retriever: str,
    catalog: str,
    *,
    activate: bool = True,
    timeout: float = 600.0,  # noqa: ASYNC109 (per-call gRPC deadlines)
    say: Callable[[str], None] = print,
) -> PublishPlan:
    """Upsert the artifact's vectors into the retriever version of its model; activate them."""
    p = plan(artifact)
    meta: dict[int, tuple[int, list[str]]] | None = None  # read once, only if something is written
    async with grpc.aio.insecure_channel(
        retriever, options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
    ) as channel:
        stub = retriever_pb2_grpc.RetrieverStub(channel)
        desc = await stub.Describe(retriever_pb2.DescribeRequest(), timeout=30)
        for sv in p.spaces:
            name = common_pb2.VectorSpace.Name(sv.space)
            have = [c for c in desc.collections if c.space == sv.space and c.version == p.version]
            vectors = np.load(sv.embeddings_file, allow_pickle=False).astype(np.float32)
            ids = np.load(sv.ids_file, allow_pickle=False).astype(np.int64)
            if have and have[0].count == len(ids):
                say(f"retriever: {name} version {p.version} already holds {len(ids)} vectors")
            else:
                if meta is None:
                    meta = await catalog_movie_meta(catalog, timeout=timeout)
                resp = await stub.Upsert(_chunks(sv.space, p.version, vectors, ids, meta), timeout=timeout)
                say(f"retriever: {name} version {p.version}: {resp.total} vectors")
            if activate and not (have and have[0].serving):
                await stub.ActivateVersion(
                    retriever_pb2.ActivateVersionRequest(space=sv.space, version=p.version), timeout=60
                )
                say(f"retriever: {name} version {p.version} serving")
    return p


class NotPublished(Exception):
    """activate: the artifact's version is missing or incomplete in the retriever."""


async def activate(
    artifact: str | Path,
    retriever: str,
    *,
    timeout: float = 60.0,  # noqa: ASYNC109 (per-call gRPC deadlines)
    say: Callable[[str], None] = print,
) -> PublishPlan:
    """Move each space's alias to the artifact's version, only if publish wrote it completely.

    The release's last step (after ``publish --no-activate`` and the embedder switch): a version
    missing in the retriever, or holding fewer vectors than the artifact, is refused before any
    alias moves, so a failed or skipped publish can never be activated.
    """
    p = plan(artifact)
    async with grpc.aio.insecure_channel(retriever) as channel:
        stub = retriever_pb2_grpc.RetrieverStub(channel)
        todo = await _published(stub, p, timeout)
        for space, name, serving in todo:
            if serving:
                say(f"retriever: {name} version {p.version} already serving")
                continue
            await stub.ActivateVersion(
                retriever_pb2.ActivateVersionRequest(space=space, version=p.version), timeout=timeout
            )
            say(f"retriever: {name} version {p.version} serving")
    return p


class SwitchFailed(Exception):
    """switch: no pod found, or some pods did not end on the artifact's version."""


def pod_targets(address: str, resolve: Callable[[str, int], list[str]] | None = None) -> list[str]:
    """Every ``ip:port`` behind ``address`` (``dns:///name:port`` or ``name:port``): the pods of a
    headless Service (one A record per ready pod), or the address itself for an IP."""
    host_port = address.removeprefix("dns:///").removeprefix("dns:")
    host, sep, port_s = host_port.rpartition(":")
    if not sep or not port_s.isdigit():
        raise SwitchFailed(f"{address!r}: want host:port or dns:///host:port")
    return [f"{ip}:{port_s}" for ip in (resolve or _resolve)(host.strip("[]"), int(port_s))]


def _resolve(host: str, port: int) -> list[str]:
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise SwitchFailed(f"cannot resolve {host}: {exc}") from exc
    ips = sorted({str(info[4][0]) for info in infos})
    return [f"[{ip}]" if ":" in ip else ip for ip in ips]


async def switch(
    artifact: str | Path,
    embedders: list[str],
    *,
    retriever: str | None = None,
    timeout: float = 120.0,  # noqa: ASYNC109 (per-call gRPC deadlines)
    say: Callable[[str], None] = print,
    resolve: Callable[[str, int], list[str]] | None = None,
) -> list[str]:
    """Hot-switch every embedder pod to the artifact's version (``Reload``), then check each
    answers with it; returns the pods switched.

    The release step between publish and activate. With ``retriever``, refused before any pod
    reloads unless the version's vectors are published completely (a switched embedder would
    otherwise search a version the retriever lacks). Pods reload concurrently; a pod that fails
    is named, the others keep the new model (run it again, or with the old artifact to roll
    back)."""
    from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc

    p = plan(artifact)
    if retriever is not None:
        async with grpc.aio.insecure_channel(retriever) as channel:
            await _published(retriever_pb2_grpc.RetrieverStub(channel), p, timeout)
    targets = [t for address in embedders for t in pod_targets(address, resolve)]
    if not targets:
        raise SwitchFailed(f"no embedder pods behind {', '.join(embedders)}")

    async def one(target: str) -> str | None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            try:
                await stub.Reload(embedder_pb2.ReloadRequest(version=p.model_version), timeout=timeout)
                info = await stub.ModelInfo(embedder_pb2.ModelInfoRequest(), timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                return f"{target}: {exc.code().name}: {exc.details()}"
        if info.version != p.model_version:
            return f"{target}: serves {info.version}, not {p.model_version}"
        say(f"embedder {target}: serving {p.model_version}")
        return None

    failures = [f for f in await asyncio.gather(*(one(t) for t in targets)) if f]
    if failures:
        raise SwitchFailed(f"{len(failures)} of {len(targets)} pods not switched: " + "; ".join(failures))
    return targets


async def _published(
    stub: retriever_pb2_grpc.RetrieverStub,
    p: PublishPlan,
    timeout: float,  # noqa: ASYNC109 (a per-call gRPC deadline)
) -> list[Any]:
    """Each space of ``p`` with its retriever collection; NotPublished unless all are complete."""
    desc = await stub.Describe(retriever_pb2.DescribeRequest(), timeout=timeout)
    todo = []
    for sv in p.spaces:
        name = common_pb2.VectorSpace.Name(sv.space)
        n = len(np.load(sv.ids_file, mmap_mode="r", allow_pickle=False))
        have = [c for c in desc.collections if c.space == sv.space and c.version == p.version]
        if not have:
            raise NotPublished(f"{name} version {p.version} is not in the retriever: run publish first")
        if have[0].count != n:
            raise NotPublished(
                f"{name} version {p.version} holds {have[0].count} of {n} vectors: run publish again"
            )
        todo.append((sv.space, name, have[0].serving))
    return todo


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "publish", help="write an artifact's movie vectors into the retriever (the version of its model)"
    )
    p.add_argument("--artifact", required=True, help="artifact folder, root or `latest` pointer")
    p.add_argument("--retriever", default="127.0.0.1:50054", help="retriever address")
    p.add_argument("--catalog", default="127.0.0.1:50052", help="catalog address (movie year/genres)")
    p.add_argument(
        "--no-activate", dest="activate", action="store_false", help="leave the serving aliases alone"
    )
    p.add_argument("--timeout", type=float, default=600.0)
    p.set_defaults(func=_cmd)
    act = sub.add_parser(
        "activate", help="serve an artifact's published version (refused unless publish wrote it completely)"
    )
    act.add_argument("--artifact", required=True, help="artifact folder, root or `latest` pointer")
    act.add_argument("--retriever", default="127.0.0.1:50054", help="retriever address")
    act.add_argument("--timeout", type=float, default=60.0)
    act.set_defaults(func=_activate_cmd)
    tl = sub.add_parser(
        "triton-load",
        help="(re)load the Triton model through the repository API; check it serves the artifact",
    )
    tl.add_argument("--triton", required=True, help="Triton's HTTP address, e.g. http://triton:8000")
    tl.add_argument("--model", required=True, help="the model's name (RECSYS_EMBEDDER_TRITON_MODEL_NAME)")
    tl.add_argument("--artifact", required=True, help="the artifact the export was made from")
    tl.add_argument("--timeout", type=float, default=300.0)
    tl.set_defaults(func=_triton_load_cmd)
    sw = sub.add_parser(
        "switch",
        help="hot-switch every embedder pod to an artifact's version (Reload), refused unless published",
    )
    sw.add_argument("--artifact", required=True, help="artifact folder, root or `latest` pointer")
    sw.add_argument(
        "--embedders",
        action="append",
        required=True,
        help="pods: a headless Service (dns:///embedder-pods:50051, every ready pod) or host:port; repeat",
    )
    sw.add_argument("--retriever", default=None, help="check the version is published here first")
    sw.add_argument("--timeout", type=float, default=120.0)
    sw.set_defaults(func=_switch_cmd)
    return p


def _run(name: str, work: Coroutine[Any, Any, T]) -> tuple[int, T | None]:
    """Run a release step's coroutine: (0, its result), or (1, None) with the reason on stderr
    (a bad artifact, the step's own refusal, or the server's status)."""
    try:
        return 0, asyncio.run(work)
    except (ArtifactError, NotPublished, SwitchFailed) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
    except grpc.aio.AioRpcError as exc:
        print(f"{name}: {exc.code().name}: {exc.details()}", file=sys.stderr)
    return 1, None


def _cmd(args: argparse.Namespace) -> int:
    return _run(
        "publish",
        publish(args.artifact, args.retriever, args.catalog, activate=args.activate, timeout=args.timeout),
    )[0]


def _activate_cmd(args: argparse.Namespace) -> int:
    return _run("activate", activate(args.artifact, args.retriever, timeout=args.timeout))[0]


def _switch_cmd(args: argparse.Namespace) -> int:
    rc, pods = _run(
        "switch", switch(args.artifact, args.embedders, retriever=args.retriever, timeout=args.timeout)
    )
    if pods is not None:
        print(f"switched {len(pods)} embedder pods")
    return rc


def _triton_load_cmd(args: argparse.Namespace) -> int:
    from recsys_core.errors import RecsysError

    from recsys_embedder.backends.triton_repository import load_and_check

    try:
        version = plan(args.artifact).model_version
        load_and_check(args.triton, args.model, version, timeout_s=args.timeout)
    except (ArtifactError, RecsysError) as exc:
        print(f"triton-load: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 1
    print(f"triton: {args.model} serves artifact {version}")
    return 0
