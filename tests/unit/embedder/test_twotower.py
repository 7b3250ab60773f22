"""The demographic two-tower model: training, save/load round trip, manifest section, cold-start
evaluation; on ml-100k (when present) it beats "most popular" for users treated as new."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from recsys_core.demographics import age_bracket, gender_index
from recsys_data.split import leave_last_out
from recsys_embedder.artifacts import load_two_tower, save_two_tower
from recsys_embedder.evaluation.two_tower import evaluate_two_tower_cold
from recsys_embedder.model.two_tower import augment_items, augment_users
from recsys_embedder.training.two_tower import (
    event_weights,
    popularity_prior,
    positions_from_end,
    train_two_tower,
)

ML100K = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "movielens" / "ml-100k.zip"


def test_brackets_and_genders() -> None:
    assert [age_bracket(a) for a in (0, 1, 12, 18, 24, 25, 44, 45, 49, 50, 55, 56, 90)] == [
        0, 1, 1, 2, 2, 3, 4, 5, 5, 6, 6, 7, 7,
    ]  # fmt: skip
    assert (gender_index("F"), gender_index("m"), gender_index(None), gender_index("x")) == (1, 2, 0, 0)


def test_train_save_load_round_trip(tiny_ds: Any, tmp_path: Path) -> None:
    train, valid, test = leave_last_out(tiny_ds.interactions)
    model = train_two_tower(tiny_ds, train, seed=3, epochs=2, dim=8, embed=4, hidden=8, title_buckets=128)
    assert len(model.train_info["train_loss"]) == 2  # type: ignore[arg-type]
    items = model.item_embeddings()
    assert items.shape == (len(tiny_ds.movies), 8)
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, atol=1e-5)
    section = save_two_tower(model, tmp_path)
    assert section["files"]["item_embeddings"] == "two_tower/item_embeddings.npy"
    assert section["files"]["movie_ids"] == "two_tower/movie_ids.npy"
    assert section["dimension"] == 8 and section["metric"] == "IP"
    json.dumps(section)  # the training CLI merges it into manifest.json
    loaded = load_two_tower(tmp_path)
    np.testing.assert_allclose(loaded.item_embeddings(), items, atol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / "two_tower" / "movie_ids.npy"), model.movie_ids)
    np.testing.assert_allclose(np.load(tmp_path / "two_tower" / "item_embeddings.npy"), items, atol=1e-6)
    table = loaded.demographic_table()
    assert table.shape == (3, 8, len(loaded.config.occupations) + 1, 8)
    g, a, o = 1, 3, 2
    np.testing.assert_allclose(
        table[g, a, o], loaded.user_embeddings(np.array([g]), np.array([a]), np.array([o]))[0], atol=1e-6
    )
    metrics = evaluate_two_tower_cold(tiny_ds, (train, valid, test), loaded)
    assert set(metrics) == {
        "two_tower/hr@10",
        "two_tower/ndcg@10",
        "popular/hr@10",
        "popular/ndcg@10",
        "recent_popular/hr@10",
        "recent_popular/ndcg@10",
        "users",
    }
    assert metrics["users"] > 0
    assert all(0.0 <= v <= 1.0 for k, v in metrics.items() if k != "users")


def test_same_seed_same_model(tiny_ds: Any) -> None:
    train, _, _ = leave_last_out(tiny_ds.interactions)
    kw: dict[str, Any] = {"seed": 5, "epochs": 1, "dim": 8, "embed": 4, "hidden": 8, "title_buckets": 128}
    a = train_two_tower(tiny_ds, train, **kw).item_embeddings()
    b = train_two_tower(tiny_ds, train, **kw).item_embeddings()
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_no_demographics_means_no_cold_metrics(tiny_ds: Any) -> None:
    import dataclasses

    train, valid, test = leave_last_out(tiny_ds.interactions)
    model = train_two_tower(tiny_ds, train, seed=0, epochs=1, dim=8, embed=4, hidden=8, title_buckets=128)
    bare = dataclasses.replace(tiny_ds, users=[])
    assert evaluate_two_tower_cold(bare, (train, valid, test), model) == {"users": 0.0}


@pytest.mark.slow
@pytest.mark.skipif(not ML100K.is_file(), reason=f"ml-100k not found at {ML100K}")
def test_ml100k_cold_start_beats_most_popular() -> None:
    """ml-100k, defaults, seed 0, refitted on TRAIN+VALIDATION: users treated as new (demographics
    only) get a higher TEST HR@10 and NDCG@10 than "most popular" (0.0615 / 0.0298 vs 0.0498 /
    0.0253 when written; seeds 0-4 all beat it, by 5 to 11 users of 943: the README)."""
    from recsys_data import load_dataset

    ds = load_dataset(ML100K)
    masks = leave_last_out(ds.interactions)
    model = train_two_tower(ds, masks[0] | masks[1], seed=0)
    m = evaluate_two_tower_cold(ds, masks, model)
    assert m["users"] == 943
    assert m["two_tower/hr@10"] > m["popular/hr@10"]
    assert m["two_tower/ndcg@10"] > m["popular/ndcg@10"]
    # the recency-weighted baseline, same users: above plain counts on ml-100k TEST (0.0594 / 0.0279)
    assert m["recent_popular/hr@10"] > m["popular/hr@10"]


def test_prior_folded_into_unit_vectors_ranks_by_taste_plus_weighted_prior() -> None:
    rng = np.random.default_rng(0)
    taste_m = rng.normal(size=(50, 6))
    taste_m /= np.linalg.norm(taste_m, axis=1, keepdims=True)
    taste_u = rng.normal(size=(7, 6))
    taste_u /= np.linalg.norm(taste_u, axis=1, keepdims=True)
    prior = rng.uniform(size=50)
    prior[:3] = (0.0, 1.0, 1.0)
    for w in (0.0, 0.3, 2.0, 50.0):
        items, users = augment_items(taste_m, prior), augment_users(taste_u, w)
        assert items.shape == (50, 8) and users.shape == (7, 8)
        np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(users, axis=1), 1.0, atol=1e-6)
        want = (taste_u @ taste_m.T + w * prior[None, :]) / np.sqrt(2.0 * (1.0 + w * w))
        np.testing.assert_allclose(users @ items.T, want, atol=1e-6)


def test_popularity_prior_recency_and_range() -> None:
    movie_ids = np.array([10, 20, 30, 40])
    day = 86400.0
    rated = np.array([10, 10, 10, 20, 30, 99])  # 99: not a known movie, ignored
    ts = np.array([0.0, 0.0, 0.0, 100 * day, 100 * day, 100 * day])
    plain = popularity_prior(movie_ids, rated, ts, None)
    assert plain[0] == pytest.approx(1.0) and plain[3] == 0.0 and plain[1] == plain[2] < 1.0
    recent = popularity_prior(movie_ids, rated, ts, 10.0)  # 3 old ratings weigh 3 / 1024
    assert recent[1] == recent[2] == pytest.approx(1.0) and recent[0] < 0.1 and recent[3] == 0.0
    assert popularity_prior(movie_ids, rated[:0], ts[:0], 10.0).tolist() == [0.0] * 4


def test_positions_from_end_follow_the_split_order(tiny_ds: Any) -> None:
    inter = tiny_ds.interactions
    _, valid, test = leave_last_out(inter)
    pos = positions_from_end(inter.user_ids, inter.movie_ids, inter.timestamps)
    eligible = np.isin(inter.user_ids, inter.user_ids[test])
    np.testing.assert_array_equal(pos[eligible] == 0, test[eligible])
    np.testing.assert_array_equal(pos[eligible] == 1, valid[eligible])
    # ties on the timestamp are broken by movie id; rows in any order
    users = np.array([7, 7, 7, 3, 7, 3])
    movies = np.array([50, 10, 20, 5, 30, 6])
    ts = np.array([2, 1, 2, 9, 1, 8])
    assert positions_from_end(users, movies, ts).tolist() == [0, 3, 1, 0, 2, 1]
    assert positions_from_end(users[:0], movies[:0], ts[:0]).tolist() == []


def test_event_weights_and_position_prior() -> None:
    day = 86400.0
    ts = np.array([0.0, 10 * day, 10 * day])
    pos = np.array([2, 1, 0])
    np.testing.assert_allclose(event_weights(ts, pos), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(event_weights(ts, pos, half_life_days=10.0), [0.5, 1.0, 1.0])
    np.testing.assert_allclose(event_weights(ts, pos, position_half_life=1.0), [0.25, 0.5, 1.0])
    np.testing.assert_allclose(
        event_weights(ts, pos, half_life_days=10.0, position_half_life=2.0), [0.25, 0.5**0.5, 1.0]
    )
    # movie 10 is rated by more users, movie 20 by more users as their latest movie
    movie_ids = np.array([10, 20])
    rated = np.array([10, 10, 10, 20, 20])
    positions = np.array([5, 6, 7, 0, 0])
    same_ts = np.zeros(5)
    plain = popularity_prior(movie_ids, rated, same_ts, None)
    assert plain[0] == pytest.approx(1.0) and plain[1] < 1.0
    late = popularity_prior(movie_ids, rated, same_ts, None, positions=positions, position_half_life=1.0)
    assert late[1] == pytest.approx(1.0) and late[0] < 0.5


def test_prior_round_trip_and_served_dimension(tiny_ds: Any, tmp_path: Path) -> None:
    train, _, _ = leave_last_out(tiny_ds.interactions)
    kw: dict[str, Any] = {"seed": 1, "epochs": 1, "dim": 8, "embed": 4, "hidden": 8, "title_buckets": 128}
    model = train_two_tower(tiny_ds, train, prior_weight=0.7, prior_half_life_days=30.0, **kw)
    assert model.dim == 8 and model.config.dim == 6 and model.item_prior is not None
    items = model.item_embeddings()
    np.testing.assert_allclose(items[:, :6] * np.sqrt(2.0), model.taste_item_embeddings(), atol=1e-6)
    section = save_two_tower(model, tmp_path)
    assert section["dimension"] == 8 and section["prior"]["weight"] == pytest.approx(0.7)
    assert section["files"]["item_prior"] == "two_tower/item_prior.npy"
    loaded = load_two_tower(tmp_path, json.loads(json.dumps(section)))
    assert loaded.prior_weight == pytest.approx(0.7) and loaded.dim == 8
    np.testing.assert_allclose(loaded.item_embeddings(), items, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "two_tower" / "item_embeddings.npy"), items, atol=1e-6)
    table = loaded.demographic_table()
    assert table.shape[-1] == 8
    np.testing.assert_allclose(np.linalg.norm(table, axis=-1), 1.0, atol=1e-5)
    # serving ranks by table . items; the same as cos + w * prior
    g, a, o = 2, 3, 1
    taste = loaded.taste_user_embeddings(np.array([g]), np.array([a]), np.array([o]))[0]
    want = model.taste_item_embeddings() @ taste + 0.7 * model.item_prior
    np.testing.assert_array_equal(
        np.argsort(-(items @ table[g, a, o]), kind="stable")[:5], np.argsort(-want, kind="stable")[:5]
    )
    bare = train_two_tower(tiny_ds, train, prior_weight=None, ranking_cold=True, **kw)
    assert bare.item_prior is None and bare.dim == bare.config.dim == 8
    assert bare.train_info["ranking_cold"] is True and bare.train_info["prior_weight"] is None
    assert "item_prior" not in save_two_tower(bare, tmp_path / "bare")["files"]
    assert load_two_tower(tmp_path / "bare").item_prior is None


def test_extended_validation_folds(tiny_ds: Any) -> None:
    from recsys_embedder.evaluation.two_tower import extended_validation_masks

    inter = tiny_ds.interactions
    train, valid, test = leave_last_out(inter)
    folds = extended_validation_masks(inter, folds=3)
    assert len(folds) == 3
    np.testing.assert_array_equal(folds[0][1], valid)
    np.testing.assert_array_equal(folds[0][0], train)
    for j, (tr, va, empty) in enumerate(folds):
        assert not empty.any() and not (tr & va).any() and not ((tr | va) & test).any()
        assert np.bincount(inter.user_ids[va]).max() == 1  # one target per user
        for u in np.unique(inter.user_ids[va]):  # the target is later than all its user's TRAIN
            mine = inter.user_ids == u
            t_va = inter.timestamps[va & mine][0]
            assert (inter.timestamps[tr & mine] <= t_va).all()
            assert int((mine & ~tr & ~va).sum()) == j + 1  # the events after the target
    model = train_two_tower(
        tiny_ds, folds[1][0], seed=0, epochs=1, dim=8, embed=4, hidden=8, title_buckets=128
    )
    m = evaluate_two_tower_cold(tiny_ds, folds[1], model, target="valid")
    assert m["users"] == float(folds[1][1].sum())
