"""Metric arithmetic on hand-made rankings; the protocol's split has no leak."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from recsys_embedder.evaluation.evaluate import make_phase
from recsys_embedder.evaluation.metrics import metrics_from_ranks, ndcg_at, target_ranks
from recsys_embedder.training.data import TEST, TRAIN, VALID


def test_target_ranks_exclusion_and_ties() -> None:
    scores = torch.tensor(
        [
            [0.9, 0.8, 0.7, 0.6, 0.5],  # target 2; item 0 excluded -> rank 1
            [0.1, 0.5, 0.5, 0.5, 0.0],  # target 2; tie with 1 (lower row first) and 3 -> rank 1
            [0.3, 0.2, 0.1, 0.0, 0.9],  # target 4 -> rank 0
        ]
    )
    targets = torch.tensor([2, 2, 4])
    exclude = torch.zeros_like(scores, dtype=torch.bool)
    exclude[0, 0] = True
    assert target_ranks(scores, targets, exclude).tolist() == [1, 1, 0]


def test_metrics_from_hand_made_ranks() -> None:
    ranks = torch.tensor([0, 3, 9, 10, 19, 25])
    m = metrics_from_ranks(ranks)
    assert m["hr@10"] == pytest.approx(3 / 6)
    assert m["hr@20"] == pytest.approx(5 / 6)
    assert m["ndcg@10"] == pytest.approx((1.0 + 1 / math.log2(5) + 1 / math.log2(11)) / 6)
    assert m["mrr@10"] == pytest.approx((1.0 + 1 / 4 + 1 / 10) / 6)
    assert ndcg_at(0) == 1.0 and ndcg_at(10) == 0.0


def test_split_is_leave_last_out_without_leak(tiny) -> None:  # type: ignore[no-untyped-def]
    p = tiny
    for u in range(p.n_users):
        ev = np.flatnonzero(p.u == u)
        key = list(zip(p.t[ev], p.movie_ids[p.i[ev]], strict=True))
        assert key == sorted(key), "events ordered by (timestamp, movie id)"
        labels = p.split[ev].tolist()
        assert labels[-1] == TEST and labels[-2] == VALID and set(labels[:-2]) <= {TRAIN}
    test_pairs = {(int(u), int(i)) for u, i in zip(p.u[p.split == TEST], p.i[p.split == TEST], strict=True)}
    train_pairs = {
        (int(u), int(i)) for u, i in zip(p.u[p.split == TRAIN], p.i[p.split == TRAIN], strict=True)
    }
    assert not test_pairs & train_pairs
    test = make_phase(p, "test")
    val = make_phase(p, "validation")
    rows = test.users
    assert (test.history[rows, test.targets] == 0).all(), "TEST target never in the TEST-time history"
    assert (val.history[val.users, val.targets] == 0).all()
    assert (test.history[val.users, val.targets] == 1).all(), "VALIDATION is history for TEST"
    assert int(val.history.sum()) == int((p.split == TRAIN).sum())
