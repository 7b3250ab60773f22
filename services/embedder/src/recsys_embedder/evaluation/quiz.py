"""The web app's quiz, simulated offline, to choose its sampling floor and dislike weight on
VALIDATION (issue #14 item 4; the served quiz is scored by ``evaluation.served``).

The floor is searched as a pool size (the ``n`` most rated movies: ``floor_for``), so one grid
fits every data set size, and each cell is the mean over ``SEEDS`` independent draws of the
quiz: one draw of 16 movies per user moves will-like HR@10 by a few hundredths (a handful of
users), more than the differences the choice is about.

Per evaluated user: show ``size`` movies drawn uniformly among those with at least ``floor``
ratings (as the catalog's SampleMovies does; counts from the events the phase may see), up to
``rounds`` rounds without repeats; "like" the shown movies the user rated >= 4 in the phase's
history, "dislike" those rated <= 2, skip the rest. The query is the artifact's user form over the
liked movies (no rating: 4.0), pushed away from the dislikes with weight ``w``; a user who
answered nothing is a miss (the web app refuses an empty quiz). Scored as every other row: the
user's whole history excluded, HR@10/NDCG@10 for every target and for targets rated >= 4.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from recsys_embedder.evaluation import evaluate as E
from recsys_embedder.model.pinsage import PinSageNet
from recsys_embedder.signals import LIKE_AT_LEAST
from recsys_embedder.training.data import Prepared

DISLIKE_AT_MOST = 2.0
# Pool sizes (the n most rated movies) the choice compares; at least three rounds of 16.
POOL_SIZES: tuple[int, ...] = (48, 64, 80, 100, 128, 160, 200, 300)
SEEDS = 5
WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
# What ``recsys train`` may serve: an explicit dislike must still move the query, so no 0.
SERVED_WEIGHTS: tuple[float, ...] = (0.25, 0.5, 1.0)
QUIZ_SIZE = 16


@dataclass
class Answers:
    liked: list[np.ndarray]  # item rows per evaluated user, in the order shown
    disliked: list[np.ndarray]


def floor_for(counts: np.ndarray, pool_size: int) -> int:
    """The SampleMovies ``min_ratings`` whose pool holds (at least) the ``pool_size`` most rated
    movies of ``counts`` (ties at the floor come along)."""
    c = np.sort(np.asarray(counts).ravel())[::-1]
    if len(c) == 0:
        return 0
    return int(c[min(pool_size, len(c)) - 1])


def simulate_answers(
    p: Prepared, phase: E.Phase, floor: int, rounds: int, size: int = 16, seed: int = 0
) -> Answers:
    counts = np.asarray(phase.history.sum(0)).ravel()
    pool = np.flatnonzero(counts >= floor)
    seqs = p.sequences(phase.upto)
    rng = np.random.default_rng(seed)
    liked, disliked = [], []
    for u in phase.users.tolist():
        items, ratings, _ = seqs[u]
        known = dict(zip(items.tolist(), ratings.tolist(), strict=True))
        shown = rng.permutation(pool)[: size * rounds]
        liked.append(np.array([m for m in shown if known.get(m, 0) >= LIKE_AT_LEAST], np.int64))
        disliked.append(np.array([m for m in shown if 0 < known.get(m, 99) <= DISLIKE_AT_MOST], np.int64))
    return Answers(liked, disliked)


@torch.no_grad()
def score(
    model: PinSageNet, emb: torch.Tensor, phase: E.Phase, ans: Answers, form: str, weight: float
) -> dict[str, float]:
    seqs = [(li, np.full(len(li), 4.0, np.float32), np.zeros(len(li), np.int64)) for li in ans.liked]
    uv = E.user_vectors(model, emb, seqs, form)
    uv = torch.stack([u if len(li) else torch.zeros_like(u) for u, li in zip(uv, ans.liked, strict=True)])
    if weight > 0:
        uv = E.push_away(uv, emb, ans.disliked, weight)
    answered = torch.tensor([len(li) + len(d) > 0 for li, d in zip(ans.liked, ans.disliked, strict=True)])
    scores = uv @ emb.T
    from recsys_embedder.evaluation.metrics import target_ranks

    ranks = target_ranks(scores, phase.targets, phase.history[phase.users] > 0)
    ranks = torch.where(answered, ranks, torch.full_like(ranks, 10**9))  # no answer: a miss
    out = E.metrics_two_targets(ranks, phase.target_ratings)
    out["no_answer"] = float(int((~answered).sum()))
    return out


def grid(
    model: PinSageNet,
    emb: torch.Tensor,
    p: Prepared,
    phase: E.Phase,
    form: str,
    floors: Iterable[int],
    weights: Iterable[float] = WEIGHTS,
    rounds: Iterable[int] = (1, 3),
    seed: int = 0,
    seeds: int = SEEDS,
) -> dict[tuple[int, float, int], dict[str, float]]:
    """``{(floor, weight, rounds): metrics}``, each the mean over ``seeds`` draws of the quiz."""
    model.eval()
    out: dict[tuple[int, float, int], dict[str, float]] = {}
    weights = list(weights)
    for f in floors:
        for r in rounds:
            runs: dict[float, list[dict[str, float]]] = {w: [] for w in weights}
            for s in range(seed, seed + seeds):
                ans = simulate_answers(p, phase, f, r, seed=s)
                for w in weights:
                    runs[w].append(score(model, emb, phase, ans, form, w))
            for w in weights:
                out[(f, w, r)] = {k: float(np.mean([m[k] for m in runs[w]])) for k in runs[w][0]}
    return out


def choose(
    model: PinSageNet,
    emb: torch.Tensor,
    p: Prepared,
    phase: E.Phase,
    form: str,
    seed: int = 0,
    served_counts: np.ndarray | None = None,
) -> dict[str, object]:
    """The (pool size, dislike weight) with the best VALIDATION "will like" HR@10 summed over 1
    and 3 rounds (each the mean of ``SEEDS`` draws), among the pool sizes the data set has and
    the served weights. The served floor (``min_ratings``) is the one that gives the same pool
    size on ``served_counts`` (ratings per movie of the events the catalog serves; default the
    phase's own). ``{"min_ratings", "pool_size", "dislike_weight", "grid": [...]}`` for the
    manifest."""
    counts = np.asarray(phase.history.sum(0)).ravel()
    n_rated = int((counts > 0).sum())
    pools = [n for n in POOL_SIZES if n <= n_rated] or [max(n_rated, 1)]
    floor = {n: floor_for(counts, n) for n in pools}
    res = grid(model, emb, p, phase, form, sorted(set(floor.values())), SERVED_WEIGHTS, seed=seed)
    best = max(
        ((n, w) for n in pools for w in SERVED_WEIGHTS),
        key=lambda nw: (
            res[(floor[nw[0]], nw[1], 1)]["like/hr@10"] + res[(floor[nw[0]], nw[1], 3)]["like/hr@10"]
        ),
    )
    served = counts if served_counts is None else np.asarray(served_counts).ravel()
    return {
        "min_ratings": floor_for(served, best[0]),
        "pool_size": int(best[0]),
        "dislike_weight": float(best[1]),
        "choice": f"best VALIDATION will-like HR@10 (1 + 3 rounds, mean of {SEEDS} draws), simulated quiz",
        "grid": [
            {
                "pool_size": n,
                "min_ratings": floor[n],
                "dislike_weight": w,
                "rounds": r,
                "like/hr@10": m["like/hr@10"],
                "no_answer": m["no_answer"],
            }
            for n in pools
            for w in SERVED_WEIGHTS
            for r in (1, 3)
            for m in [res[(floor[n], w, r)]]
        ],
    }
