"""The global time split (evaluation/temporal.py): cutoff, targets, recent popular, a smoke run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from recsys_embedder.evaluation import temporal as T
from recsys_embedder.training.data import TEST, TRAIN, VALID, Prepared, split_labels
from recsys_embedder.training.train import TrainConfig


def _prepared(rows: list[tuple[int, int, float, int]], n_items: int = 10) -> Prepared:
    """rows = (user id, movie id, rating, timestamp); movie ids 1..n_items; sorted like prepare()."""
    uid, mid, r, t = (np.array(c) for c in zip(*rows, strict=True))
    order = np.lexsort((mid, t, uid))
    uid, mid, r, t = uid[order], mid[order], r[order], t[order]
    user_ids, u = np.unique(uid, return_inverse=True)
    movie_ids = np.arange(1, n_items + 1, dtype=np.int64)
    return Prepared(
        name="hand",
        sha256="",
        movie_ids=movie_ids,
        titles=[f"m{k}" for k in movie_ids],
        years=[None] * n_items,
        genres=[()] * n_items,
        genre_vocab=(),
        user_ids=user_ids.astype(np.int64),
        u=u.astype(np.int64),
        i=(mid - 1).astype(np.int64),
        r=r.astype(np.float32),
        t=t.astype(np.int64),
        split=split_labels(uid, mid, t),
    )


def test_cutoff_quantile() -> None:
    ts = np.array([50, 10, 40, 20, 30, 60, 70, 80, 90, 100])
    assert T.temporal_cutoff(ts, 0.9) == 100  # 9 of 10 before
    assert T.temporal_cutoff(ts, 0.5) == 60  # 5 before
    assert T.temporal_cutoff(ts, 0.55) == 70  # ceil(5.5) = 6 before
    assert T.temporal_cutoff(ts, 0.01) == 20  # at least one event before
    assert T.temporal_cutoff(ts, 0.999) == 100  # at least one after
    # ties at the cutoff: every tied event is "after" (fewer than q before)
    tied = np.array([1, 2, 3, 3, 3, 4])
    c = T.temporal_cutoff(tied, 0.5)
    assert c == 3 and (tied < c).sum() == 2
    with pytest.raises(ValueError):
        T.temporal_cutoff(ts, 1.0)


def test_targets_and_counts() -> None:
    rows = [
        # user 1: two before, then two tied at t=100 (movie 3 < movie 5: movie 3 is the target)
        (1, 1, 5, 10), (1, 2, 3, 20), (1, 5, 2, 100), (1, 3, 4, 100), (1, 4, 5, 120),
        # user 2: one before, one after rated 2 (a will-watch target, not a will-like one)
        (2, 6, 1, 30), (2, 7, 2, 110),
        # user 3: only before; user 4: only after
        (3, 1, 4, 15), (3, 2, 4, 16),
        (4, 8, 5, 130), (4, 9, 5, 140),
    ]  # fmt: skip
    p = _prepared([(u, m, float(r), t) for u, m, r, t in rows])
    s = T.temporal_split(p, cutoff=100)
    assert s.cutoff == 100 and s.before.sum() == 5
    assert p.user_ids[s.users].tolist() == [1, 2]
    assert p.movie_ids[s.targets].tolist() == [3, 7]
    assert s.target_ratings.tolist() == [4.0, 2.0] and s.target_times.tolist() == [100, 110]
    assert s.counts == {
        "events": 11, "events_before": 5, "events_after": 6, "users": 4, "users_before_and_after": 2,
        "users_before_only": 1, "users_after_only": 1, "users_evaluated": 2, "users_like": 1,
    }  # fmt: skip
    # the quantile gives the same split: 5 of 11 before -> q in (4/11, 5/11]
    assert T.temporal_split(p, 5 / 11).cutoff == 100
    # history = pre-cutoff events only (excluded from the ranking)
    h = s.history(p)
    assert h.sum() == 5 and h[0, 0] == 1 and h[0, 2] == 0

    # the view: only pre-cutoff events, re-split by leave-last-out over them
    view = T.pre_cutoff_view(p, s.before)
    assert len(view.t) == 5 and (view.t < 100).all() and view.n_users == p.n_users
    assert view.split.tolist() == [TRAIN, TRAIN, TRAIN, TRAIN, TRAIN]  # nobody has 3 pre-cutoff events
    p2 = _prepared([(1, m, 4.0, 10 * m) for m in range(1, 7)] + [(2, 1, 4.0, 5), (2, 2, 4.0, 70)])
    s2 = T.temporal_split(p2, cutoff=45)
    v2 = T.pre_cutoff_view(p2, s2.before)
    assert v2.split.tolist() == [TRAIN, TRAIN, VALID, TEST, TRAIN]  # user 1: movies 1..4; user 2: movie 1
    assert p2.movie_ids[s2.targets].tolist() == [5, 2]

    # ranks: a scorer that puts the target first gets HR@10 = NDCG@10 = 1; like rows = user 1 only
    phase = s.phase(p)

    def perfect(users: torch.Tensor) -> torch.Tensor:
        scores = torch.zeros(len(users), p.n_items)
        for k, u in enumerate(users.tolist()):
            scores[k, s.targets[list(s.users).index(u)]] = 1.0
        return scores

    m = s.score(phase, perfect)
    assert m["hr@10"] == m["ndcg@10"] == m["like/hr@10"] == 1.0 and m["users"] == 2 and m["like/users"] == 1


def test_recent_popularity_weights() -> None:
    day = 86400
    items = np.array([0, 0, 1, 2])
    ts = np.array([100 * day, 70 * day, 100 * day, 40 * day])
    # age from the cutoff (day 130), 30-day half-life
    w = T.recent_popularity(items, ts, 4, now=130 * day, half_life_days=30.0)
    np.testing.assert_allclose(w, [0.5 + 0.25, 0.5, 0.125, 0.0])
    # without ``now``: the two-tower evaluation's weights (age from the newest event)
    np.testing.assert_allclose(T.recent_popularity(items, ts, 4, half_life_days=30.0), [1.5, 1.0, 0.25, 0.0])
    # measured from the cutoff or from the newest event: the same ranking
    assert np.argsort(-w[:3]).tolist() == [0, 1, 2]
    scorer = T.fit_recent_popular(items, ts, 4, now=130 * day, half_life_days=30.0)
    assert scorer(torch.tensor([0, 1])).shape == (2, 4)


def test_run_temporal_smoke(tiny) -> None:  # type: ignore[no-untyped-def]
    # spread each user's events over the whole time line so that many users straddle the cutoff
    pos = np.arange(len(tiny.u)) - np.searchsorted(tiny.u, tiny.u)
    n = np.bincount(tiny.u)[tiny.u]
    p = dataclasses.replace(tiny, t=(1_000_000_000 + (pos / n) * 365 * 86400).astype(np.int64) + tiny.u)
    cfg = TrainConfig(
        dim=16, hidden=16, n_neighbours=4, num_random_walks=30, epochs=2, batch_size=64, user_window=8,
        max_steps_per_epoch=3, seed=1,
    )  # fmt: skip
    logs: list[str] = []
    res = T.run_temporal(
        p, cfg, quantile=0.8, forms=("pinsage", "mean"), ease_lambdas=(10.0, 100.0), log=logs.append
    )
    c = res["counts"]
    assert c["users_evaluated"] > 20 and c["events_before"] + c["events_after"] == len(p.t)
    assert abs(c["events_before"] / c["events"] - 0.8) < 0.05
    assert set(res["models"]) == {
        "popular",
        "recent-popular",
        "item-knn",
        "ease",
        "pinsage/pinsage",
        "pinsage/mean",
    }
    for m in res["models"].values():
        assert 0.0 <= m["ndcg@10"] <= m["hr@10"] <= 1.0 and m["users"] == c["users_evaluated"]
        assert m["like/users"] == c["users_like"]
    assert res["params"]["ease"]["lambda"] in (10.0, 100.0) and res["training"]["epochs_run"] >= 1
    table = T.format_temporal_table(res)
    assert "| pinsage/pinsage | will watch |" in table and "| recent-popular | will like |" in table
    assert any("cutoff" in line for line in logs)


DAY = 86400


def _trending(n_users: int = 400) -> Prepared:
    """User u arrives at hour 6u and rates, a day apart, the four movies that are new that
    week (ids c..c+3, c = 1 + arrival day // 7). Movies 30-39 were rated long ago by 120 early
    users (the all-time most rated: a weekly movie gets at most 4 x 28 ratings). Recency
    predicts the next movie, all-time counts do not."""
    rows: list[tuple[int, int, float, int]] = [
        (1000 + v, m, 4.0, m * 3600) for v in range(120) for m in range(30, 40)
    ]
    for u in range(1, n_users + 1):
        arrival = 100 * DAY + u * 6 * 3600
        c = 1 + (arrival - 100 * DAY) // (7 * DAY)
        for k in range(4):
            rows.append((u, c + k, 4.0, arrival + k * DAY))
    return _prepared(rows, n_items=40)


def test_popularity_scorers_match_the_catalog_formulas() -> None:
    p = _trending()
    every = np.ones(len(p.t), dtype=bool)
    now = int(p.t.max())
    cands = T.popularity_scorers(p, every, now, half_lives=(7.0,), prior_weight=25.0)
    assert list(cands) == ["most_rated", "bayesian_average", "recent/7"]
    users = torch.tensor([0])
    count = np.bincount(p.i, minlength=p.n_items)
    most = cands["most_rated"][1](users)[0].numpy()
    assert np.argsort(-most, kind="stable")[:3].tolist() == np.argsort(-count, kind="stable")[:3].tolist()
    rec = cands["recent/7"][1](users)[0].numpy()
    expect = np.bincount(p.i, weights=0.5 ** ((now - p.t) / (7.0 * DAY)), minlength=p.n_items)
    np.testing.assert_allclose(rec, expect / expect.max(), rtol=1e-4, atol=1e-6)
    assert cands["recent/7"][0] == {"ranking": "recent", "half_life_days": 7.0}


def test_choose_popularity_prefers_recency_when_it_predicts() -> None:
    res = T.choose_popularity(_trending(), quantile=0.8, half_lives=(7.0, 3650.0))
    assert res["ranking"] == "recent" and res["half_life_days"] == 7.0
    assert res["validation"]["recent/7"]["hr@10"] > res["validation"]["most_rated"]["hr@10"]
    assert set(res["test"]) == set(res["validation"])
    assert res["counts"]["validation"]["users_evaluated"] > 0
    assert res["cutoffs"]["validation"] < res["cutoffs"]["test"]
    assert "time split VALIDATION" in res["chosen_on"]
    assert "recent/7" in T.popularity_summary(res)
