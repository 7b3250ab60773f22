"""Fixtures: a retriever server on 127.0.0.1:0 over real Milvus Lite, data sets with a brute-force oracle."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from recsys.common.v1 import common_pb2
from recsys.retriever.v1 import retriever_pb2, retriever_pb2_grpc
from recsys_core.testing import test_settings, wait_serving
from recsys_retriever.server import RetrieverApp
from recsys_retriever.settings import RetrieverSettings

os.environ.setdefault("OMP_NUM_THREADS", "1")

GENRES = ["Action", "Children's", "Sci-Fi", "Drama", "Film-Noir", "Comedy"]


@dataclass
class DataSet:
    ids: np.ndarray
    vecs: np.ndarray
    years: np.ndarray
    genres: list[tuple[str, ...]]

    def items(self) -> list[retriever_pb2.VectorItem]:
        return [
            retriever_pb2.VectorItem(
                movie_id=int(i),
                vector=common_pb2.Vector(values=v.tolist()),
                year=int(y),
                genres=list(g),
            )
            for i, v, y, g in zip(self.ids, self.vecs, self.years, self.genres, strict=True)
        ]

    def requests(
        self, version: str, space: Any = common_pb2.VECTOR_SPACE_PINSAGE, chunk: int = 500
    ) -> list[retriever_pb2.UpsertRequest]:
        items = self.items()
        reqs = [
            retriever_pb2.UpsertRequest(items=items[s : s + chunk]) for s in range(0, len(items), chunk)
        ] or [retriever_pb2.UpsertRequest()]
        reqs[0].space = space
        reqs[0].version = version
        reqs[0].dimension = self.vecs.shape[1]
        return reqs

    def brute_force(
        self,
        q: np.ndarray,
        k: int,
        exclude: Sequence[int] = (),
        genres_any: Sequence[str] = (),
        genres_all: Sequence[str] = (),
        year_min: int = 0,
        year_max: int = 0,
    ) -> tuple[list[int], np.ndarray]:
        ok = ~np.isin(self.ids, np.asarray(list(exclude), dtype=np.int64))
        for j, g in enumerate(self.genres):
            if genres_any and not set(g) & set(genres_any):
                ok[j] = False
            if genres_all and not set(genres_all) <= set(g):
                ok[j] = False
        if year_min:
            ok &= self.years >= year_min
        if year_max:
            ok &= self.years <= year_max
        scores = self.vecs @ (q / np.linalg.norm(q))
        cand = np.where(ok)[0]
        order = cand[np.lexsort((self.ids[cand], -scores[cand]))][:k]
        return [int(self.ids[j]) for j in order], scores[order]


def make_dataset(n: int, dim: int, seed: int = 0, first_id: int = 1) -> DataSet:
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    years = rng.integers(1950, 2020, size=n)
    genres = [tuple(g for g in GENRES if rng.random() < 0.35) for _ in range(n)]
    return DataSet(np.arange(first_id, first_id + n, dtype=np.int64), vecs, years, genres)


@pytest.fixture
def dataset() -> Any:
    return make_dataset


async def requests_iter(
    reqs: Sequence[retriever_pb2.UpsertRequest],
) -> AsyncIterator[retriever_pb2.UpsertRequest]:
    for r in reqs:
        yield r


@pytest.fixture
def upsert_stream() -> Any:
    return requests_iter


@dataclass
class Running:
    app: RetrieverApp
    port: int
    channel: grpc.aio.Channel
    stub: retriever_pb2_grpc.RetrieverStub


def retriever_settings(**overrides: Any) -> RetrieverSettings:
    values: dict[str, Any] = {
        "batch_max_wait_ms": 2.0,
        "health_check_interval_s": 0.2,
        "connect_retry_initial_s": 0.05,
        "connect_retry_max_s": 0.5,
        "milvus_timeout_s": 5.0,
        "exclude_overfetch": 32,
    }
    values.update(overrides)
    return test_settings(RetrieverSettings, **values)


async def start_retriever(wait: bool = True, **overrides: Any) -> Running:
    app = RetrieverApp(retriever_settings(**overrides))
    port = await app.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    if wait:
        await wait_serving(channel, "", timeout=30)
    return Running(app, port, channel, retriever_pb2_grpc.RetrieverStub(channel))


async def stop_retriever(r: Running) -> None:
    await r.channel.close()
    await r.app.stop(0)


@pytest.fixture
def retriever_factory() -> Iterator[Any]:
    yield start_retriever, stop_retriever


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[Running]:
    r = await start_retriever(data_dir=tmp_path / "retriever")
    try:
        yield r
    finally:
        await stop_retriever(r)
