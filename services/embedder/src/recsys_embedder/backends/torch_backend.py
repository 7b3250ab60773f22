"""In-process torch: the query network on CPU or CUDA, and the loaded model serving uses.

Device placement goes through one ``device`` setting ("auto" | "cpu" | "cuda");
every tensor the network sees is moved there, results come back as numpy on
the CPU, so the same code path runs on a GPU machine and on this CPU one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from recsys_core.errors import FailedPrecondition

from recsys_embedder.artifacts import Artifact
from recsys_embedder.backends.base import (
    ModelMeta,
    NewMovie,
    QueryBackend,
    QueryBatch,
    TwoTowerServing,
)
from recsys_embedder.backends.querynet import QueryNet
from recsys_embedder.model.features import movie_features


def pick_device(setting: str) -> torch.device:
    """ "auto": CUDA when present, else CPU; "cuda" without a GPU is refused (FailedPrecondition)."""
    s = setting.strip().lower()
    if s == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if s == "cuda" or s.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise FailedPrecondition(f"device {setting!r} asked for but torch sees no CUDA device")
        return torch.device(s)
    if s == "cpu":
        return torch.device("cpu")
    raise FailedPrecondition(f"unknown device {setting!r} (auto, cpu or cuda)")


class TorchQueryBackend:
    """Runs :class:`QueryNet` in-process on one device, one batch at a time, off the event loop."""

    def __init__(self, net: QueryNet, device: torch.device) -> None:
        self.device = device
        self.net = net.to(device).eval()
        self.name = f"torch-{device.type}"
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torch-query")

    def run(self, batch: QueryBatch) -> np.ndarray:
        with torch.inference_mode():
            args = [
                torch.from_numpy(np.ascontiguousarray(a)).to(self.device) for a in batch.arrays().values()
            ]
            out = self.net(*args)
            return out.to("cpu").numpy().astype(np.float32, copy=False)

    async def embed_queries(self, batch: QueryBatch) -> np.ndarray:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.run, batch)

    async def close(self) -> None:
        self._pool.shutdown(wait=False)


class ArtifactModel:
    """A loaded artifact as the service sees it (``backends.base.LoadedModel``)."""

    def __init__(
        self,
        art: Artifact,
        meta: ModelMeta,
        backend: QueryBackend,
        device: torch.device,
        two_tower: TwoTowerServing | None,
    ) -> None:
        self.art = art
        self.meta = meta
        self.backend = backend
        self.device = device
        self.movie_ids = np.asarray(art.movie_ids, dtype=np.int64)
        self.item_vectors = np.ascontiguousarray(art.item_embeddings, dtype=np.float32)
        self.genres = tuple(art.feature_spec.genres)
        self.two_tower = two_tower
        self._model = art.model.to(device).eval()
        self._states: list[torch.Tensor] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torch-newmovie")

    def item_states(self) -> list[torch.Tensor]:
        if self._states is None:
            with torch.inference_mode():
                t = [
                    torch.from_numpy(np.ascontiguousarray(a)).to(self.device)
                    for a in (
                        self.art.item_dense,
                        self.art.item_title_tokens,
                        self.art.neighbour_ids,
                        self.art.neighbour_weights,
                    )
                ]
                self._states = self._model.item_states(*t)
        return self._states

    def new_movies(self, movies: Sequence[NewMovie]) -> np.ndarray:
        spec = self.art.feature_spec
        dense, tokens = movie_features(
            spec, [m.title for m in movies], [m.year for m in movies], [m.genres for m in movies], None
        )
        t = max([1, *(len(m.neighbour_rows) for m in movies)])
        ids = np.zeros((len(movies), t), np.int64)
        w = np.zeros((len(movies), t), np.float32)
        for k, m in enumerate(movies):
            n = len(m.neighbour_rows)
            ids[k, :n] = m.neighbour_rows
            w[k, :n] = 1.0
        dev = self.device
        with torch.inference_mode():
            out = self._model.embed_new_items(
                torch.from_numpy(dense).to(dev),
                torch.from_numpy(tokens).to(dev),
                torch.from_numpy(ids).to(dev),
                torch.from_numpy(w).to(dev),
                self.item_states(),
            )
            return out.to("cpu").numpy().astype(np.float32, copy=False)

    async def embed_new_movies(self, movies: Sequence[NewMovie]) -> np.ndarray:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.new_movies, movies)

    async def warm_new_movies(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self.item_states)

    async def close(self) -> None:
        await self.backend.close()
        self._pool.shutdown(wait=False)
