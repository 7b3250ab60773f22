"""What ``recsys train`` will cost on a data set, from measured rates (no torch, no DGL).

A step of the full softmax scores every movie for every event, so its time per event grows with
the catalog: ``seconds/event = A + B * movies``, fitted to two measurements on this project's
2-core reference machine (OMP_NUM_THREADS=1): ml-100k (1,682 movies) 9,134 events/s
(bench/train_bench.py, docs/scale.md) and the generated 60,000-movie, 2M-rating set of issue #19,
494 events/s. The sampled softmax (1,024 negatives) encodes and scores only the movies a step
touches, a set bounded by the batch (histories, negatives, their 2-hop neighbours) but not by the
catalog: its seconds per event are interpolated between the measured step-loop rates (ml-100k
6,950, a 20k-movie set 3,958, a 60k-movie set 2,250 events/s) and held at the last one beyond
60k movies (the assumption that the touched set has saturated; docs/scale.md).
Memory: ``GiB = C + D * ratings`` through the measured ml-100k peak (0.61 GiB at 100k ratings)
and issue #19's 6.9 GB at 2M; both estimates are extrapolations outside those points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FULL_POINTS = ((1_682, 9_134.0), (60_000, 494.0))  # (movies, events/s) measured, full softmax
SAMPLED_POINTS = ((1_682, 6_950.0), (20_000, 3_958.0), (60_000, 2_250.0))  # measured, 1024 negatives
RSS_POINTS = ((100_000, 0.61), (2_000_000, 6.9 / 1.074))  # (ratings, GiB) measured (6.9 GB = 6.4 GiB)
EPOCHS = 15  # TrainConfig().epochs; the refit on every event trains up to as many again


@dataclass(frozen=True)
class TrainingCost:
    ratings: int
    movies: int
    loss: str
    events_per_s: float
    epoch_s: float
    total_s: float  # selection run (up to EPOCHS) + refit (as many epochs again), upper bound
    peak_gib: float

    def summary(self) -> str:
        return (
            f"{self.ratings:,} ratings, {self.movies:,} movies, {self.loss} softmax: about "
            f"{self.events_per_s:,.0f} events/s on 2 CPU cores, {_duration(self.epoch_s)} an epoch, up to "
            f"{_duration(self.total_s)} for {EPOCHS} epochs plus the refit, peak memory about "
            f"{self.peak_gib:.1f} GiB (extrapolated from measured runs, docs/scale.md)"
        )


def _duration(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 2 * 3600:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def full_events_per_s(movies: int) -> float:
    (m0, r0), (m1, r1) = FULL_POINTS
    b = (1 / r1 - 1 / r0) / (m1 - m0)
    a = 1 / r0 - b * m0
    return 1.0 / max(a + b * movies, 1e-9)


def sampled_events_per_s(movies: int) -> float:
    ms = [m for m, _ in SAMPLED_POINTS]
    spe = [1 / r for _, r in SAMPLED_POINTS]
    return 1.0 / float(np.interp(movies, ms, spe))


def peak_gib(ratings: int) -> float:
    (n0, g0), (n1, g1) = RSS_POINTS
    d = (g1 - g0) / (n1 - n0)
    return max(g0 + d * (ratings - n0), g0)


def estimate(ratings: int, movies: int, loss: str = "full") -> TrainingCost:
    if ratings < 0 or movies < 1:
        raise ValueError(f"need ratings >= 0 and movies >= 1, got {ratings}, {movies}")
    if loss not in ("full", "sampled"):
        raise ValueError(f"unknown loss {loss!r}")
    rate = full_events_per_s(movies) if loss == "full" else sampled_events_per_s(movies)
    epoch_s = ratings / rate
    return TrainingCost(ratings, movies, loss, rate, epoch_s, 2 * EPOCHS * epoch_s, peak_gib(ratings))
