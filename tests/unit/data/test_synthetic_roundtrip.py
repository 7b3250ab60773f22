"""The generator's output, read back by the matching reader, for all three formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from recsys_data import load_dataset
from recsys_data.synthetic import generate


@pytest.mark.parametrize("fmt", ["100k", "1m", "latest"])
def test_roundtrip(small_sets: dict[str, Path], fmt: str) -> None:
    ds = load_dataset(small_sets[fmt])
    assert ds.format == fmt
    assert ds.name == f"syn-{fmt}"
    assert ds.sha256 is None and ds.skipped_rows == 0
    inter = ds.interactions
    assert len(inter) == 800
    assert inter.user_ids.dtype == np.int64 and inter.movie_ids.dtype == np.int64
    assert inter.ratings.dtype == np.float32 and inter.timestamps.dtype == np.int64
    assert len(ds.movies) == 60
    assert {m.movie_id for m in ds.movies} == set(range(1, 61))
    assert set(np.unique(inter.movie_ids)) <= {m.movie_id for m in ds.movies}
    assert all(m.year is not None and not m.title.endswith(")") for m in ds.movies)
    assert all(m.genres and set(m.genres) <= set(ds.genres) for m in ds.movies if m.genres)
    # no duplicate (user, movie)
    keys = inter.user_ids * 1000 + inter.movie_ids
    assert np.unique(keys).size == len(inter)
    # timestamps strictly increasing per user in generation order => distinct per user
    order = np.lexsort((inter.timestamps, inter.user_ids))
    same_user = inter.user_ids[order][1:] == inter.user_ids[order][:-1]
    assert (np.diff(inter.timestamps[order])[same_user] > 0).all()
    if fmt == "latest":
        assert ds.users == []
        assert set(np.unique(inter.ratings * 2)) <= set(range(1, 11))
        assert any("," in m.title for m in ds.movies)  # quoted in movies.csv
        assert all(m.imdb_id and m.imdb_id.startswith("tt") for m in ds.movies)
    else:
        assert len(ds.users) == 40
        assert set(np.unique(inter.ratings)) <= {1, 2, 3, 4, 5}
        assert all(u.gender in ("F", "M") and u.occupation and u.age for u in ds.users)


def test_zip_roundtrip(tmp_path: Path) -> None:
    path = generate(tmp_path / "ml-syn", fmt="1m", n_users=20, n_movies=30, n_ratings=200, seed=3, zip=True)
    assert path == tmp_path / "ml-syn.zip"
    ds = load_dataset(path)
    assert ds.name == "ml-syn" and ds.format == "1m" and len(ds.interactions) == 200
    assert ds.sha256 is not None and len(ds.sha256) == 64


def test_encodings_as_in_the_real_formats(small_sets: dict[str, Path]) -> None:
    item = (small_sets["100k"] / "u.item").read_bytes()
    assert b"Mis\xe9rables" in item  # Latin-1
    assert b"Mis\xe9rables" in (small_sets["1m"] / "movies.dat").read_bytes()
    assert "Misérables".encode() in (small_sets["latest"] / "movies.csv").read_bytes()  # UTF-8
    assert any("Misérables" in m.title for m in load_dataset(small_sets["100k"]).movies)


def test_deterministic(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", fmt="100k", n_users=10, n_movies=20, n_ratings=50, seed=5)
    b = generate(tmp_path / "b", fmt="100k", n_users=10, n_movies=20, n_ratings=50, seed=5)
    c = generate(tmp_path / "c", fmt="100k", n_users=10, n_movies=20, n_ratings=50, seed=6)
    assert (a / "u.data").read_bytes() == (b / "u.data").read_bytes()
    assert (a / "u.data").read_bytes() != (c / "u.data").read_bytes()


def test_popularity_is_skewed_and_tastes_matter(tmp_path: Path) -> None:
    path = generate(tmp_path / "s", fmt="1m", n_users=300, n_movies=500, n_ratings=20_000, seed=1)
    ds = load_dataset(path)
    counts = np.sort(np.bincount(ds.interactions.movie_ids))[::-1]
    assert counts[:50].sum() > 0.3 * counts.sum()  # top 10% of movies: > 30% of ratings
    # genre-correlated tastes: a user's deviation from their own mean on a genre, measured on two
    # disjoint halves of their ratings of that genre, agrees (it would be ~0 without tastes)
    genre_of = {m.movie_id: m.genres[0] for m in ds.movies if m.genres}
    inter = ds.interactions
    user_mean = np.bincount(inter.user_ids, inter.ratings) / np.maximum(np.bincount(inter.user_ids), 1)
    groups: dict[tuple[int, str], list[float]] = {}
    for u, m, r in zip(
        inter.user_ids.tolist(), inter.movie_ids.tolist(), inter.ratings.tolist(), strict=True
    ):
        if m in genre_of:
            groups.setdefault((u, genre_of[m]), []).append(r - user_mean[u])
    halves = np.array([(np.mean(v[0::2]), np.mean(v[1::2])) for v in groups.values() if len(v) >= 6])
    assert len(halves) > 100
    assert np.corrcoef(halves[:, 0], halves[:, 1])[0, 1] > 0.3


def test_every_user_rates_when_possible(tmp_path: Path) -> None:
    ds = load_dataset(generate(tmp_path / "s", fmt="100k", n_users=100, n_movies=50, n_ratings=300))
    assert np.unique(ds.interactions.user_ids).size == 100


def test_dense_and_invalid_requests(tmp_path: Path) -> None:
    ds = load_dataset(generate(tmp_path / "d", fmt="latest", n_users=5, n_movies=6, n_ratings=30))
    assert len(ds.interactions) == 30
    with pytest.raises(ValueError, match="exceeds"):
        generate(tmp_path / "x", fmt="latest", n_users=2, n_movies=2, n_ratings=5)
    with pytest.raises(ValueError, match="fmt"):
        generate(tmp_path / "y", fmt="10m", n_users=2, n_movies=2, n_ratings=1)
