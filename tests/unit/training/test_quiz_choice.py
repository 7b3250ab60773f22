"""The simulated quiz's floor (by pool size) and dislike weight, chosen on VALIDATION."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recsys_embedder.evaluation import evaluate as E
from recsys_embedder.evaluation import quiz as Q
from recsys_embedder.training.train import TrainConfig, TrainResult, train

SMALL = TrainConfig(
    dim=16, hidden=16, n_neighbours=4, num_random_walks=30, epochs=2, batch_size=64, user_window=8, seed=5
)


@pytest.fixture(scope="module")
def trained(tiny) -> TrainResult:  # type: ignore[no-untyped-def]
    return train(tiny, SMALL, log=lambda _m: None, progress=False)


def test_floor_for_keeps_the_n_most_rated() -> None:
    counts = np.array([5, 50, 7, 30, 30, 0, 12])
    assert Q.floor_for(counts, 1) == 50
    assert Q.floor_for(counts, 2) == 30  # a tie at the floor comes along
    assert int((counts >= Q.floor_for(counts, 2)).sum()) == 3
    assert int((counts >= Q.floor_for(counts, 3)).sum()) == 3
    assert int((counts >= Q.floor_for(counts, 4)).sum()) == 4
    assert Q.floor_for(counts, 100) == 0  # more than there are: every movie
    assert Q.floor_for(np.array([], np.int64), 5) == 0


def test_simulated_answers_follow_the_ratings(tiny) -> None:  # type: ignore[no-untyped-def]
    val = E.make_phase(tiny, "validation")
    ans = Q.simulate_answers(tiny, val, floor=0, rounds=3, seed=1)
    seqs = tiny.sequences(val.upto)
    for k, u in enumerate(val.users.tolist()):
        known = dict(zip(seqs[u][0].tolist(), seqs[u][1].tolist(), strict=True))
        assert all(known[m] >= 4 for m in ans.liked[k].tolist())
        assert all(known[m] <= 2 for m in ans.disliked[k].tolist())
        assert not set(ans.liked[k].tolist()) & set(ans.disliked[k].tolist())


def test_grid_averages_the_draws(tiny, trained: TrainResult) -> None:  # type: ignore[no-untyped-def]
    val = E.make_phase(tiny, "validation")
    emb = torch.from_numpy(trained.item_embeddings)
    one = [
        Q.grid(trained.model, emb, tiny, val, "mean", [0], [0.5], [1], seed=s, seeds=1)[(0, 0.5, 1)][
            "like/hr@10"
        ]
        for s in (3, 4)
    ]
    two = Q.grid(trained.model, emb, tiny, val, "mean", [0], [0.5], [1], seed=3, seeds=2)[(0, 0.5, 1)]
    assert two["like/hr@10"] == pytest.approx(sum(one) / 2)


def test_choose_reports_the_best_cell_and_the_served_floor(tiny, trained: TrainResult) -> None:  # type: ignore[no-untyped-def]
    val = E.make_phase(tiny, "validation")
    emb = torch.from_numpy(trained.item_embeddings)
    served = np.bincount(tiny.i, minlength=tiny.n_items)
    out = Q.choose(trained.model, emb, tiny, val, "mean", served_counts=served)
    grid = out["grid"]
    assert isinstance(grid, list) and grid
    n, w = out["pool_size"], out["dislike_weight"]
    assert w in Q.SERVED_WEIGHTS
    assert out["min_ratings"] == Q.floor_for(served, int(n))  # type: ignore[arg-type]

    def total(pool: int, weight: float) -> float:
        return sum(g["like/hr@10"] for g in grid if g["pool_size"] == pool and g["dislike_weight"] == weight)

    assert total(n, w) == max(total(g["pool_size"], g["dislike_weight"]) for g in grid)  # type: ignore[arg-type]
