"""How a caller's history becomes the query network's input: the two rules serving and the
offline evaluation share (one home, no torch here).

1. **Order** (:func:`event_order`). The learned user form weighs the most recent events most,
   so the order of a history matters. An entry with ``rated_at`` takes its place by time (ties
   by movie id, as the training split sorts events); an entry without ``rated_at`` takes its
   place from the list order: the list is in event order, oldest first, the LAST element is the
   newest. Untimed entries count as newer than every timed one (a quiz answer given now after
   a stored history). A list without any ``rated_at`` is therefore used exactly as given.
2. **Low ratings** (:class:`HistoryRule`). A rating below ``threshold`` is kept as ordinary
   history (``history``: the network has learned a weight per rating), left out (``ignore``),
   or moved to the dislikes that push the query away (``dislike``). The rule an artifact
   serves is chosen on VALIDATION by ``recsys train`` (``models.pinsage.serving.history_rule``
   in the manifest, see :func:`choose_rule` in ``evaluation.evaluate``); artifacts without one
   serve ``history``, the way the network was trained. Explicit dislikes from a caller
   (``disliked_movie_ids``, the quiz) always push the query away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# "liked, no rating" (the quiz, most back ends): the rating a history entry without one gets.
DEFAULT_RATING = 4.0
LOW_RATING_MODES: tuple[str, ...] = ("history", "ignore", "dislike")
# "Will like" targets in every evaluation: held-out events rated at least this.
LIKE_AT_LEAST = 4.0


@dataclass(frozen=True)
class HistoryRule:
    """What a rating below ``threshold`` does to the user vector (see the module docstring)."""

    low_rating: str = "history"
    threshold: float = 2.5

    def __post_init__(self) -> None:
        if self.low_rating not in LOW_RATING_MODES:
            raise ValueError(f"low_rating must be one of {LOW_RATING_MODES}, got {self.low_rating!r}")

    @property
    def name(self) -> str:
        return "history" if self.low_rating == "history" else f"{self.low_rating} < {self.threshold:g}"

    def split(self, ratings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks ``(history, dislike)`` over ``ratings`` (0 = no rating = liked)."""
        r = np.asarray(ratings, np.float32)
        low = (r > 0) & (r < self.threshold)
        if self.low_rating == "history":
            return np.ones(r.shape, bool), np.zeros(r.shape, bool)
        if self.low_rating == "ignore":
            return ~low, np.zeros(r.shape, bool)
        return ~low, low

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any] | None) -> HistoryRule:
        if not d:
            return cls()
        return cls(low_rating=str(d.get("low_rating", "history")), threshold=float(d.get("threshold", 2.5)))


# Candidates ``recsys train`` compares on VALIDATION (the first is the baseline every choice must
# not lose to on either target).
CANDIDATE_RULES: tuple[HistoryRule, ...] = (
    HistoryRule("history"),
    HistoryRule("ignore", 2.5),
    HistoryRule("ignore", 1.5),
    HistoryRule("dislike", 2.5),
    HistoryRule("dislike", 1.5),
)


def effective_ratings(ratings: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ratings with 0 ("liked, no rating") replaced by :data:`DEFAULT_RATING`."""
    r = np.asarray(ratings, np.float32)
    return np.where(r > 0, r, np.float32(DEFAULT_RATING)).astype(np.float32)


def event_order(
    rows: np.ndarray, timestamps: Sequence[float | None] | np.ndarray, timed: np.ndarray | None = None
) -> np.ndarray:
    """Indices that put a history oldest -> newest (rule 1 of the module docstring).

    ``rows`` are item rows (ascending in movie id, so ties by row = ties by movie id);
    ``timestamps[j]`` is None for an entry without ``rated_at`` or, given the ``timed`` mask,
    ignored where ``timed[j]`` is false.
    """
    n = len(rows)
    if timed is None:
        timed = np.array([t is not None for t in timestamps], bool)
        primary = np.array([t if t is not None else np.inf for t in timestamps], np.float64)
    else:
        primary = np.where(timed, np.asarray(timestamps, np.float64), np.inf)
    secondary = np.where(timed, np.asarray(rows, np.int64), np.arange(n, dtype=np.int64))
    return np.lexsort((secondary, primary)) if n else np.zeros(0, np.int64)
