"""Exact search over a Milvus Lite collection held in memory (numpy), for the embedded default.

Milvus Lite is a Python engine inside this process: every search pays per-call overhead and then
materialises each returned row column by column (`Segment.row_to_dict`, vector included), which
made it the largest single cost of a Recommend (docs/performance.md). A Lite data dir has exactly
one owner process, this retriever, so a copy of a collection's rows kept here cannot go stale
behind its back: :class:`~recsys_retriever.store.MilvusStore` drops the copy on every write to
the collection (upsert, delete, drop) and builds it again from Lite on the next search.

Only the filter expressions the service builds are understood (``array_contains_any`` /
``array_contains_all`` over genres, ``year >=`` / ``year <=``, ``movie_id not in [...]``, joined
with ``and``, optionally parenthesised); :meth:`ExactIndex.search` returns None for anything else
and the store asks Milvus Lite itself. Ranking: inner product, highest first, ties by ascending
movie id; results are exact (FLAT), whatever index the collection declares.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np

from recsys_retriever.service import RawHits

_CLAUSE = re.compile(
    r"""array_contains_(?P<op>any|all)\(genres,\ (?P<genres>\[(?:"(?:[^"\\]|\\.)*"(?:,\ )?)*\])\)
      | year\ (?P<cmp>>=|<=)\ (?P<year>\d+)
      | movie_id\ not\ in\ (?P<notin>\[[-\d,\ ]*\])""",
    re.X,
)


def parse_filter(expr: str) -> list[re.Match[str]] | None:
    """The conjunction's clauses, or None when ``expr`` is not one the service builds."""
    clauses: list[re.Match[str]] = []
    p, depth, n = 0, 0, len(expr)
    if not expr:
        return clauses
    while True:
        while expr.startswith("(", p):
            depth, p = depth + 1, p + 1
        m = _CLAUSE.match(expr, p)
        if m is None:
            return None
        clauses.append(m)
        p = m.end()
        while depth and expr.startswith(")", p):
            depth, p = depth - 1, p + 1
        if p == n:
            return clauses if depth == 0 else None
        if not expr.startswith(" and ", p):
            return None
        p += 5


class ExactIndex:
    """A collection's rows: ids, unit vectors, years and genres (as a boolean matrix)."""

    def __init__(
        self, ids: np.ndarray, vectors: np.ndarray, years: np.ndarray, genres: Sequence[Sequence[str]]
    ) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.years = np.asarray(years, dtype=np.int64)
        vocab = sorted({g for gs in genres for g in gs})
        self._col = {g: j for j, g in enumerate(vocab)}
        self.genres = np.zeros((len(self.ids), len(vocab)), dtype=bool)
        for i, gs in enumerate(genres):
            for g in gs:
                self.genres[i, self._col[g]] = True

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.ids.nbytes + self.vectors.nbytes + self.years.nbytes + self.genres.nbytes)

    def mask(self, expr: str) -> np.ndarray | None:
        clauses = parse_filter(expr)
        if clauses is None:
            return None
        keep = np.ones(len(self), dtype=bool)
        for m in clauses:
            if m["op"]:
                names = json.loads(m["genres"])
                cols = [self._col[g] for g in names if g in self._col]
                if m["op"] == "any":
                    keep &= self.genres[:, cols].any(axis=1) if cols else False
                elif len(cols) < len(set(names)):
                    keep &= False  # a genre no movie has: nothing has all of them
                elif cols:
                    keep &= self.genres[:, cols].all(axis=1)
            elif m["cmp"]:
                year = int(m["year"])
                keep &= self.years >= year if m["cmp"] == ">=" else self.years <= year
            else:
                keep &= ~np.isin(self.ids, np.asarray(json.loads(m["notin"]), dtype=np.int64))
        return keep

    def search(self, queries: np.ndarray, limit: int, expr: str) -> list[RawHits] | None:
        keep = self.mask(expr)
        if keep is None:
            return None
        rows = np.flatnonzero(keep)
        ids, vectors = self.ids[rows], self.vectors[rows]
        scores = np.asarray(queries, dtype=np.float32) @ vectors.T  # (queries, rows)
        out: list[RawHits] = []
        for s in scores:
            if limit < s.shape[0]:
                # the limit best, and every row tied with the worst of them (exact tie order)
                part = np.argpartition(-s, limit - 1)[:limit]
                cut = s[part].min()
                part = np.flatnonzero(s >= cut)
            else:
                part = np.arange(s.shape[0])
            order = part[np.lexsort((ids[part], -s[part]))][:limit]
            out.append(RawHits(ids[order], s[order].astype(np.float32)))
        return out
