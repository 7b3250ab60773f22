"""The readers on the authentic MovieLens archives in ../shared/data/movielens (see its SOURCES.md).

Skips, with the reason, where the archives are absent (they are never committed)."""

from __future__ import annotations

import numpy as np
import pytest
from recsys_data import DatasetNotFound, find_dataset, leave_last_out, load_dataset


def _need(name: str):  # type: ignore[no-untyped-def]
    try:
        return find_dataset(name)
    except DatasetNotFound as exc:
        pytest.skip(f"{name} is not available here: {exc}")


def test_ml_100k() -> None:
    ds = load_dataset(_need("ml-100k"))
    assert ds.format == "100k"
    assert (len(ds.interactions), len(ds.users), len(ds.movies)) == (100_000, 943, 1682)
    counts = np.unique(ds.interactions.ratings, return_counts=True)[1].tolist()
    assert counts == [6110, 11370, 27145, 34174, 21201]  # SOURCES.md
    by_id = {m.movie_id: m for m in ds.movies}
    assert by_id[1].title == "Toy Story" and by_id[1].year == 1995
    assert "Animation" in by_id[1].genres
    assert any(m.title == "Misérables, Les" for m in ds.movies)  # Latin-1 decoded
    assert by_id[267].title == "unknown" and by_id[267].genres == ()
    assert "unknown" not in ds.genres and len(ds.genres) == 18
    users = {u.user_id: u for u in ds.users}
    assert users[1].age == 24 and users[1].gender == "M" and users[1].occupation == "technician"
    train, valid, test = leave_last_out(ds.interactions)
    assert test.sum() == valid.sum() == 943  # every ml-100k user has >= 20 ratings
    assert train.sum() == 100_000 - 2 * 943


def test_ml_latest_small() -> None:
    ds = load_dataset(_need("ml-latest-small"))
    assert ds.format == "latest" and ds.users == []
    assert len(ds.interactions) == 100_836 and len(ds.movies) == 9742
    assert np.unique(ds.interactions.user_ids).size == 610
    assert np.unique(ds.interactions.movie_ids).size == 9724
    by_id = {m.movie_id: m for m in ds.movies}
    assert by_id[1].imdb_id == "tt0114709" and by_id[1].tmdb_id == 862
    quoted = [m for m in ds.movies if "," in m.title]
    assert quoted and all(m.year for m in quoted[:20])
    assert "(no genres listed)" not in ds.genres
    assert by_id[114335].genres == ()


def test_ml_1m_metadata_only() -> None:
    path = _need("ml-1m-metadata-only")
    with pytest.raises(Exception, match="no ratings"):
        load_dataset(path)
    ds = load_dataset(path, metadata_only=True)
    assert ds.format == "1m"
    assert (len(ds.movies), len(ds.users), len(ds.interactions)) == (3883, 6040, 0)
    assert {m.movie_id for m in ds.movies} <= set(range(1, 3953))
    assert any(m.title.startswith("Misérables") for m in ds.movies)
    users = {u.user_id: u for u in ds.users}
    assert users[1].gender == "F" and users[1].age == 1 and users[1].occupation == "k-12 student"
