"""leave_last_out: the evaluation protocol (issue #4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from recsys_data import Interactions, leave_last_out, load_dataset


def _inter(rows: list[tuple[int, int, int]]) -> Interactions:
    u, m, t = (np.array(c, dtype=np.int64) for c in zip(*rows, strict=True)) if rows else ([], [], [])
    return Interactions(
        np.asarray(u, np.int64),
        np.asarray(m, np.int64),
        np.ones(len(rows), np.float32),
        np.asarray(t, np.int64),
    )


def test_small_example() -> None:
    # user 1: 4 events (one tie at t=30 broken by movie id); user 2: 2 events (all train)
    inter = _inter([(1, 10, 30), (2, 5, 1), (1, 11, 10), (1, 9, 30), (2, 6, 2), (1, 12, 20)])
    train, valid, test = leave_last_out(inter)
    assert test.tolist() == [True, False, False, False, False, False]  # (1, 10, t=30): last
    assert valid.tolist() == [False, False, False, True, False, False]  # (1, 9, t=30)
    assert train.tolist() == [False, True, True, False, True, True]


def test_empty() -> None:
    train, valid, test = leave_last_out(_inter([]))
    assert train.size == valid.size == test.size == 0


def _check(inter: Interactions) -> None:
    train, valid, test = leave_last_out(inter)
    assert (train.astype(int) + valid + test == 1).all()  # a partition
    users, counts = np.unique(inter.user_ids, return_counts=True)
    for u, c in zip(users.tolist(), counts.tolist(), strict=True):
        rows = inter.user_ids == u
        if c < 3:
            assert train[rows].all()
            continue
        assert test[rows].sum() == 1 and valid[rows].sum() == 1
        key = lambda mask: (inter.timestamps[mask], inter.movie_ids[mask])  # noqa: E731
        t_test, m_test = (a[0] for a in key(rows & test))
        t_valid, m_valid = (a[0] for a in key(rows & valid))
        assert (t_valid, m_valid) < (t_test, m_test)
        tt, mm = key(rows & train)
        # no leak: every TRAIN event comes before VALIDATION, which comes before TEST
        assert all((a, b) < (t_valid, m_valid) for a, b in zip(tt.tolist(), mm.tolist(), strict=True))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 6), st.integers(1, 30), st.integers(0, 5)),
        min_size=0,
        max_size=60,
        unique_by=lambda r: r[:2],
    ),
    st.randoms(use_true_random=False),
)
def test_properties_and_row_order_independence(rows: list[tuple[int, int, int]], rnd) -> None:  # type: ignore[no-untyped-def]
    inter = _inter(rows)
    _check(inter)
    perm = list(range(len(rows)))
    rnd.shuffle(perm)
    shuffled = _inter([rows[i] for i in perm])
    masks = leave_last_out(inter)
    masks_shuffled = leave_last_out(shuffled)
    for a, b in zip(masks, masks_shuffled, strict=True):
        assert a[perm].tolist() == b.tolist()  # same rows chosen whatever the file order


def test_on_generated_data_is_deterministic(small_sets: dict[str, Path]) -> None:
    inter = load_dataset(small_sets["100k"]).interactions
    _check(inter)
    first = leave_last_out(inter)
    second = leave_last_out(load_dataset(small_sets["100k"]).interactions)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    train, valid, test = first
    assert test.sum() == valid.sum() == (np.bincount(inter.user_ids) >= 3).sum()
    assert len(inter.take(train)) == train.sum()
