"""The web app's quiz, simulated offline, to choose its sampling floor and dislike weight on
VALIDATION (issue #14 item 4; the served quiz is scored by ``evaluation.served``).

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
FLOORS: tuple[int, ...] = (0, 10, 25, 50, 100, 150, 200)
WEIGHTS: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
# What ``recsys train`` may serve: an explicit dislike must still move the query, so no 0.
SERVED_WEIGHTS: tuple[float, ...] = (0.25, 0.5, 1.0)
QUIZ_SIZE = 16


@dataclass
class Answers:
    liked: list[np.ndarray]  # item rows per evaluated user, in the order shown
    disliked: list[np.ndarray]


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
    floors: Iterable[int] = FLOORS,
    weights: Iterable[float] = WEIGHTS,
    rounds: Iterable[int] = (1, 3),
    seed: int = 0,
) -> dict[tuple[int, float, int], dict[str, float]]:
    """``{(floor, weight, rounds): metrics}``."""
    model.eval()
    out = {}
    weights = list(weights)
    for f in floors:
        for r in rounds:
            ans = simulate_answers(p, phase, f, r, seed=seed)
            for w in weights:
                out[(f, w, r)] = score(model, emb, phase, ans, form, w)
    return out


def choose(
    model: PinSageNet, emb: torch.Tensor, p: Prepared, phase: E.Phase, form: str, seed: int = 0
) -> dict[str, object]:
    """The (floor, dislike weight) with the best VALIDATION "will like" HR@10 summed over 1 and 3
    rounds, among floors leaving at least three rounds of movies and the served weights.
    ``{"min_ratings", "dislike_weight", "grid": [...]}`` for the manifest."""
    counts = np.asarray(phase.history.sum(0)).ravel()
    floors = [f for f in FLOORS if int((counts >= f).sum()) >= 3 * QUIZ_SIZE] or [0]
    res = grid(model, emb, p, phase, form, floors, SERVED_WEIGHTS, seed=seed)
    best = max(
        ((f, w) for f in floors for w in SERVED_WEIGHTS),
        key=lambda fw: res[(fw[0], fw[1], 1)]["like/hr@10"] + res[(fw[0], fw[1], 3)]["like/hr@10"],
    )
    return {
        "min_ratings": int(best[0]),
        "dislike_weight": float(best[1]),
        "choice": "best VALIDATION will-like HR@10 (1 + 3 rounds) of the simulated quiz",
        "grid": [
            {
                "min_ratings": f,
                "dislike_weight": w,
                "rounds": r,
                "like/hr@10": m["like/hr@10"],
                "no_answer": m["no_answer"],
            }
            for (f, w, r), m in res.items()
        ],
    }
