"""Data set -> arrays for training and evaluation, with the leave-last-out split.

Protocol (every number the project prints uses it): every rating is an
interaction; per user, events are sorted by (timestamp, movie id); the last
event is TEST, the one before VALIDATION, the rest TRAIN.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

TRAIN, VALID, TEST = 0, 1, 2


def split_labels(user_ids: np.ndarray, movie_ids: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Split label per event (TRAIN / VALID / TEST), in input order, by
    ``recsys_data.leave_last_out`` (the project's one implementation;
    users with fewer than 3 events stay entirely in TRAIN)."""
    from recsys_data import Interactions, leave_last_out

    n = len(user_ids)
    inter = Interactions(
        user_ids=np.asarray(user_ids, dtype=np.int64),
        movie_ids=np.asarray(movie_ids, dtype=np.int64),
        ratings=np.zeros(n, dtype=np.float32),
        timestamps=np.asarray(timestamps, dtype=np.int64),
    )
    _, valid, test = leave_last_out(inter)
    labels = np.full(n, TRAIN, dtype=np.int8)
    labels[valid] = VALID
    labels[test] = TEST
    return labels


@dataclass
class Prepared:
    """A data set as dense rows, events sorted by (user, timestamp, movie id)."""

    name: str
    sha256: str
    movie_ids: np.ndarray  # item row -> movie id (the whole catalog)
    titles: list[str]
    years: list[int | None]
    genres: list[tuple[str, ...]]
    genre_vocab: tuple[str, ...]
    user_ids: np.ndarray  # user row -> user id
    u: np.ndarray  # event -> user row
    i: np.ndarray  # event -> item row
    r: np.ndarray  # rating
    t: np.ndarray  # timestamp
    split: np.ndarray  # event -> TRAIN / VALID / TEST
    # ``recsys data holdout``'s marker when the data set is a hold-out of another (else None)
    holdout_of: dict[str, Any] | None = None

    def content_sha256(self) -> str:
        """Checksum of the catalog ids and the sorted events (works for folders too)."""
        h = hashlib.sha256()
        for a in (self.movie_ids, self.user_ids[self.u], self.movie_ids[self.i], self.r, self.t):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    @property
    def n_items(self) -> int:
        return len(self.movie_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def counts(self, upto: int = TRAIN) -> np.ndarray:
        """Interactions per item among events with split <= ``upto``."""
        sel = self.split <= upto
        return np.bincount(self.i[sel], minlength=self.n_items)

    def sequences(self, upto: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per user row: (items, ratings, timestamps) of events with split <= upto, in order."""
        sel = self.split <= upto
        u, i, r, t = self.u[sel], self.i[sel], self.r[sel], self.t[sel]
        bounds = np.searchsorted(u, np.arange(self.n_users + 1))
        return [
            (i[bounds[k] : bounds[k + 1]], r[bounds[k] : bounds[k + 1]], t[bounds[k] : bounds[k + 1]])
            for k in range(self.n_users)
        ]

    def targets(self, which: int) -> np.ndarray:
        """Item row of each user's VALID or TEST event (-1 when the user has none)."""
        out = np.full(self.n_users, -1, dtype=np.int64)
        sel = self.split == which
        out[self.u[sel]] = self.i[sel]
        return out


def prepare(dataset: Any) -> Prepared:
    """Turn a ``recsys_data`` Dataset (or anything shaped like it) into :class:`Prepared`."""
    movies = sorted(dataset.movies, key=lambda m: m.movie_id)
    movie_ids = np.array([m.movie_id for m in movies], dtype=np.int64)
    inter = dataset.interactions
    uid = np.asarray(inter.user_ids, dtype=np.int64)
    mid = np.asarray(inter.movie_ids, dtype=np.int64)
    rat = np.asarray(inter.ratings, dtype=np.float32)
    ts = np.asarray(inter.timestamps, dtype=np.int64)
    split = split_labels(uid, mid, ts)
    order = np.lexsort((mid, ts, uid))
    uid, mid, rat, ts, split = uid[order], mid[order], rat[order], ts[order], split[order]
    item_row = np.searchsorted(movie_ids, mid)
    if np.any(item_row >= len(movie_ids)) or np.any(
        movie_ids[np.minimum(item_row, len(movie_ids) - 1)] != mid
    ):
        raise ValueError("ratings reference movies missing from the catalog")
    user_ids, user_row = np.unique(uid, return_inverse=True)
    genre_vocab = tuple(getattr(dataset, "genres", ()) or sorted({g for m in movies for g in m.genres}))
    return Prepared(
        name=str(dataset.name),
        sha256=str(getattr(dataset, "sha256", None) or ""),
        movie_ids=movie_ids,
        titles=[m.title for m in movies],
        years=[m.year for m in movies],
        genres=[tuple(m.genres) for m in movies],
        genre_vocab=genre_vocab,
        user_ids=user_ids.astype(np.int64),
        u=user_row.astype(np.int64),
        i=item_row.astype(np.int64),
        r=rat,
        t=ts,
        split=split,
        holdout_of=getattr(dataset, "holdout_of", None),
    )


def load(source: str) -> Prepared:
    """Load a data set by name, folder or zip through ``recsys_data``."""
    from recsys_data import load_dataset

    return prepare(load_dataset(source))
