"""Item input features: genres, year, title words (hashed), popularity.

Plain numpy, no DGL: serving builds the same features for a brand-new movie
(``EmbedNewMovie``) with :func:`movie_features` and the vocabulary stored in
the artifact (genre list, title buckets, popularity scale).

Layout of the dense block (``FeatureSpec.dense_dim`` columns):
``[genres multi-hot | decade one-hot (+unknown) | year scalar | known-year flag |
popularity scalar | popularity bucket one-hot]``. Title words go through a
stable hash (CRC32) into ``title_buckets`` rows of an embedding table; index
0 is padding.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

_YEAR_SUFFIX = re.compile(r"\s*\((\d{4})\)\s*$")
_WORD = re.compile(r"[a-z0-9]+")
_DECADES = tuple(range(1900, 2030, 10))  # 1900s .. 2020s; earlier go to the first
_POP_BUCKETS = 8


@dataclass(frozen=True)
class FeatureSpec:
    """Everything needed to turn a movie's metadata into model inputs."""

    genres: tuple[str, ...]
    title_buckets: int = 4096
    title_len: int = 8
    pop_log_max: float = 1.0  # log1p of the largest TRAIN count (popularity scale)

    @property
    def dense_dim(self) -> int:
        return len(self.genres) + len(_DECADES) + 1 + 2 + 1 + _POP_BUCKETS

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["genres"] = list(self.genres)
        return d

    @classmethod
    def from_json(cls, d: dict[str, object]) -> FeatureSpec:
        return cls(
            genres=tuple(str(g) for g in d["genres"]),  # type: ignore[attr-defined]
            title_buckets=int(d["title_buckets"]),  # type: ignore[call-overload]
            title_len=int(d["title_len"]),  # type: ignore[call-overload]
            pop_log_max=float(d["pop_log_max"]),  # type: ignore[arg-type]
        )


def title_words(title: str) -> list[str]:
    """Lower-cased alphanumeric words of a title, without the trailing "(year)"."""
    return _WORD.findall(_YEAR_SUFFIX.sub("", title).lower())


def hash_word(word: str, buckets: int) -> int:
    """Stable bucket in 1..buckets-1 (0 is padding)."""
    return 1 + zlib.crc32(word.encode("utf-8")) % (buckets - 1)


def movie_features(
    spec: FeatureSpec,
    titles: Sequence[str],
    years: Sequence[int | None],
    genres: Sequence[Sequence[str]],
    counts: Sequence[int] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Dense features ``(n, spec.dense_dim)`` float32 and title tokens ``(n, title_len)`` int64.

    ``counts`` are TRAIN interaction counts (0 for a new movie; ``None`` = all 0).
    Unknown genres are ignored.
    """
    n = len(titles)
    dense = np.zeros((n, spec.dense_dim), dtype=np.float32)
    tokens = np.zeros((n, spec.title_len), dtype=np.int64)
    g_index = {g: k for k, g in enumerate(spec.genres)}
    off_dec = len(spec.genres)
    off_year = off_dec + len(_DECADES) + 1
    off_pop = off_year + 2
    cnt = np.zeros(n) if counts is None else np.asarray(counts, dtype=np.float64)
    for row in range(n):
        for g in genres[row]:
            k = g_index.get(g)
            if k is not None:
                dense[row, k] = 1.0
        year = years[row]
        if year is None or year <= 0:
            dense[row, off_dec + len(_DECADES)] = 1.0
        else:
            dec = max(0, min(len(_DECADES) - 1, (int(year) - _DECADES[0]) // 10))
            dense[row, off_dec + dec] = 1.0
            dense[row, off_year] = (float(year) - 1960.0) / 40.0
            dense[row, off_year + 1] = 1.0
        words = title_words(titles[row])[: spec.title_len]
        for j, w in enumerate(words):
            tokens[row, j] = hash_word(w, spec.title_buckets)
    pop = np.log1p(cnt) / max(spec.pop_log_max, 1e-6)
    dense[:, off_pop] = pop.astype(np.float32)
    bucket = np.minimum((pop * _POP_BUCKETS).astype(np.int64), _POP_BUCKETS - 1)
    dense[np.arange(n), off_pop + 1 + bucket] = 1.0
    return dense, tokens
