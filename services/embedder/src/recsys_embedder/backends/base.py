"""What the service needs from a loaded model (no torch, no grpc, no tritonclient here).

The query network (history -> query vector) is the only part that runs on a
backend (in-process torch on CPU/CUDA, or Triton); stored vectors are numpy
arrays and the rare inductive new-movie path runs in-process in torch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from recsys_embedder.signals import HistoryRule

# The history forms, in the order of the network's FORM input (= proto UserForm - 1).
USER_FORMS: tuple[str, ...] = ("latest", "mean", "recency", "pinsage")

# Tensor names and dtypes of the exported query network, shared by the exporter,
# the Triton model and the Triton client (and checked against config.pbtxt).
IN_HISTORY = "HISTORY"  # INT64 (B, L) item rows, oldest -> newest, right-aligned, 0 where padded
IN_RATINGS = "RATINGS"  # FP32 (B, L)
IN_MASK = "MASK"  # FP32 (B, L) 1 on real events
IN_DISLIKES = "DISLIKES"  # INT64 (B, K) item rows, 0 where padded
IN_DISLIKE_MASK = "DISLIKE_MASK"  # FP32 (B, K)
IN_FORM = "FORM"  # INT64 (B, 1) index into USER_FORMS
OUT_QUERY = "QUERY"  # FP32 (B, D) L2-normalised (all-zero when the signal is empty)
INPUTS: tuple[tuple[str, str], ...] = (
    (IN_HISTORY, "INT64"),
    (IN_RATINGS, "FP32"),
    (IN_MASK, "FP32"),
    (IN_DISLIKES, "INT64"),
    (IN_DISLIKE_MASK, "FP32"),
    (IN_FORM, "INT64"),
)
OUTPUTS: tuple[tuple[str, str], ...] = ((OUT_QUERY, "FP32"),)


@dataclass(frozen=True)
class QueryBatch:
    """Padded inputs of the query network (see the tensor names above)."""

    history: np.ndarray
    ratings: np.ndarray
    mask: np.ndarray
    dislikes: np.ndarray
    dislike_mask: np.ndarray
    form: np.ndarray  # (B, 1)

    def __len__(self) -> int:
        return int(self.history.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            IN_HISTORY: self.history,
            IN_RATINGS: self.ratings,
            IN_MASK: self.mask,
            IN_DISLIKES: self.dislikes,
            IN_DISLIKE_MASK: self.dislike_mask,
            IN_FORM: self.form,
        }


@dataclass(frozen=True)
class QueryInput:
    """One signal, resolved to item rows: history sorted oldest -> newest."""

    history: np.ndarray  # int64 item rows
    ratings: np.ndarray  # float32
    dislikes: np.ndarray  # int64 item rows
    form: int  # index into USER_FORMS


def pad_batch(items: Sequence[QueryInput], min_len: int = 1) -> QueryBatch:
    """Right-align histories (most recent last) and left-align dislikes, zero padded."""
    b = len(items)
    length = max([min_len, *(len(q.history) for q in items)])
    k = max([1, *(len(q.dislikes) for q in items)])
    hist = np.zeros((b, length), np.int64)
    rat = np.zeros((b, length), np.float32)
    mask = np.zeros((b, length), np.float32)
    dis = np.zeros((b, k), np.int64)
    dmask = np.zeros((b, k), np.float32)
    form = np.zeros((b, 1), np.int64)
    for row, q in enumerate(items):
        n = len(q.history)
        if n:
            hist[row, length - n :] = q.history
            rat[row, length - n :] = q.ratings
            mask[row, length - n :] = 1.0
        m = len(q.dislikes)
        if m:
            dis[row, :m] = q.dislikes
            dmask[row, :m] = 1.0
        form[row, 0] = q.form
    return QueryBatch(hist, rat, mask, dis, dmask, form)


class QueryBackend(Protocol):
    """Runs the query network on one padded batch."""

    name: str  # "torch-cpu" | "torch-cuda" | "triton"

    async def embed_queries(self, batch: QueryBatch) -> np.ndarray:
        """``(B, D)`` float32."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class NewMovie:
    title: str
    year: int | None
    genres: tuple[str, ...]
    neighbour_rows: np.ndarray  # int64 rows of known movies


@dataclass
class TwoTowerServing:
    """The two-tower space as serving needs it: item vectors and new-user vectors."""

    dimension: int
    movie_ids: np.ndarray  # sorted
    item_vectors: np.ndarray  # (n, d) float32
    user_table: np.ndarray  # (3, 8, n_occ + 1, d): gender x age bracket x occupation, 0 = not given
    occupations: tuple[str, ...]


@dataclass
class ModelMeta:
    version: str
    dimension: int
    metric: str = "IP"
    metrics: dict[str, float] = field(default_factory=dict)
    trained_at: dt.datetime | None = None
    dataset: str = ""
    default_form: str = "pinsage"
    user_window: int = 50
    dislike_weight: float = 0.5
    # How low ratings in a history enter the query (signals.py; chosen on VALIDATION by training).
    history_rule: HistoryRule = field(default_factory=HistoryRule)


class LoadedModel(Protocol):
    """A loaded, warmed-up artifact version."""

    meta: ModelMeta
    backend: QueryBackend
    movie_ids: np.ndarray  # sorted item row -> movie id
    item_vectors: np.ndarray  # (n, D) float32, L2-normalised
    genres: tuple[str, ...]
    two_tower: TwoTowerServing | None

    async def embed_new_movies(self, movies: Sequence[NewMovie]) -> np.ndarray:
        """``(B, D)`` float32 (in-process, whatever the backend)."""
        ...

    async def close(self) -> None: ...
