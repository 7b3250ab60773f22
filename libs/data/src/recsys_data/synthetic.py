"""Synthetic MovieLens-shaped data sets, written in the real file formats.

Not MovieLens: made-up movies and users whose statistics look like it. Movie popularity follows
a power law (Zipf-like, randomly assigned to ids); users have latent genre preferences (a
Dirichlet draw) and rate movies of the genres they like higher; user activity is skewed too
(every user gets at least one rating when ``n_ratings >= n_users``); timestamps increase strictly
per user; there is no duplicate (user, movie). Titles carry years, some put the article last
("Secret, The (1994)"), some hold non-ASCII letters (written as Latin-1 in ml-100k/1m files and
UTF-8 in ml-latest files) and, in ml-latest, commas (so the CSV quotes them). Everything is
vectorised numpy: a million ratings take a few seconds.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from recsys_core.demographics import ML1M_AGES, ML1M_OCCUPATIONS, ML100K_OCCUPATIONS

GENRES_100K = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
               "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
               "Romance", "Sci-Fi", "Thriller", "War", "Western"]  # fmt: skip
GENRES_1M = GENRES_100K[1:]
GENRES_LATEST = [g if g != "Children's" else "Children" for g in GENRES_1M] + ["IMAX"]
_WORDS = ["Secret", "Night", "River", "Garden", "Misérables", "Café", "Storm", "Return", "Empire",
          "Dream", "Summer", "Shadow", "Königin", "Island", "Fire", "Love", "Road", "Ghost", "City",
          "Señor"]  # fmt: skip
FORMATS = ("100k", "1m", "latest")


def generate(
    out_dir: Path,
    *,
    fmt: str = "100k",
    n_users: int,
    n_movies: int,
    n_ratings: int,
    seed: int = 0,
    zip: bool = False,
) -> Path:
    """Write a synthetic data set in MovieLens format ``fmt`` ("100k", "1m" or "latest") into
    ``out_dir`` and return it; with ``zip=True`` also write ``<out_dir>.zip`` (files under the
    folder ``<out_dir.name>/``, like GroupLens' zips) and return the zip's path."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if n_users < 1 or n_movies < 1 or n_ratings < 0:
        raise ValueError("n_users and n_movies must be >= 1, n_ratings >= 0")
    if n_ratings > n_users * n_movies:
        raise ValueError(f"n_ratings={n_ratings} exceeds n_users*n_movies={n_users * n_movies}")
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    genre_names = {"100k": GENRES_100K[1:], "1m": GENRES_1M, "latest": GENRES_LATEST}[fmt]
    n_genres = len(genre_names)
    # movies: 1-3 genres each, genre frequency skewed like MovieLens (Drama, Comedy first)
    genre_weight = rng.dirichlet(np.full(n_genres, 0.8))
    movie_genres = np.zeros((n_movies, n_genres), dtype=bool)
    n_per_movie = rng.choice([1, 2, 3], size=n_movies, p=[0.45, 0.35, 0.2])
    for k in range(3):
        rows = np.flatnonzero(n_per_movie > k)
        movie_genres[rows, rng.choice(n_genres, size=rows.size, p=genre_weight)] = True
    years = rng.integers(1920, 2019, size=n_movies)
    popularity = 1.0 / np.arange(1, n_movies + 1) ** 0.9
    popularity = rng.permutation(popularity)
    popularity /= popularity.sum()
    quality = rng.normal(0.0, 0.5, size=n_movies)

    users, movies = _sample_pairs(rng, n_users, n_movies, n_ratings, popularity)
    # ratings: movie quality + the user's taste for the movie's genres + noise
    taste = rng.dirichlet(np.full(n_genres, 0.3), size=n_users)  # rows sum to 1
    mg = movie_genres[movies]
    affinity = (taste[users] * mg).sum(axis=1) / np.maximum(mg.sum(axis=1), 1) * n_genres  # ~1 on average
    user_bias = rng.normal(0.0, 0.4, size=n_users)
    score = 3.3 + quality[movies] + user_bias[users] + 0.8 * (affinity - 1.0) + rng.normal(0, 0.6, users.size)
    if fmt == "latest":
        ratings = np.clip(np.round(score * 2) / 2, 0.5, 5.0)
    else:
        ratings = np.clip(np.round(score), 1, 5)
    times = _timestamps(rng, users, n_users)

    if fmt == "100k":
        order = rng.permutation(users.size)  # u.data is unordered
    elif fmt == "1m":
        order = np.lexsort((times, users))
    else:
        order = np.lexsort((movies, users))
    users, movies, ratings, times = users[order] + 1, movies[order] + 1, ratings[order], times[order]
    titles = _titles(rng, n_movies, with_commas=fmt == "latest")
    genre_lists = [[genre_names[j] for j in np.flatnonzero(row)] for row in movie_genres]

    if fmt == "100k":
        _write_100k(out_dir, rng, titles, years, genre_lists, n_users, users, movies, ratings, times)
    elif fmt == "1m":
        _write_1m(out_dir, rng, titles, years, genre_lists, n_users, users, movies, ratings, times)
    else:
        _write_latest(out_dir, rng, titles, years, genre_lists, users, movies, ratings, times)
    if zip:
        target = out_dir.parent / f"{out_dir.name}.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(f"{out_dir.name}/", b"")
            for f in sorted(out_dir.iterdir()):
                zf.write(f, f"{out_dir.name}/{f.name}")
        return target
    return out_dir


def _sample_pairs(
    rng: np.random.Generator, n_users: int, n_movies: int, n_ratings: int, popularity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """n_ratings distinct (user, movie) pairs (0-based), skewed user activity and popularity."""
    total = n_users * n_movies
    if n_ratings == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if n_ratings > total // 3:  # dense: sample the pairs directly
        keys = rng.choice(total, size=n_ratings, replace=False)
        return keys // n_movies, keys % n_movies
    activity = rng.lognormal(0.0, 1.0, size=n_users)
    activity /= activity.sum()
    keys = np.zeros(0, np.int64)
    if n_ratings >= n_users:  # everyone rates at least one movie
        keys = np.arange(n_users) * n_movies + rng.choice(n_movies, size=n_users, p=popularity)
    for _ in range(20):
        need = n_ratings - keys.size
        if need <= 0:
            break
        draw = int(need * 2) + 16
        new = rng.choice(n_users, size=draw, p=activity) * n_movies + rng.choice(
            n_movies, size=draw, p=popularity
        )
        _, first = np.unique(np.concatenate([keys, new]), return_index=True)
        first.sort()
        keys = np.concatenate([keys, new])[first]
    if keys.size < n_ratings:  # popularity too concentrated: fill uniformly
        rest = np.setdiff1d(np.arange(total), keys) if total <= 50_000_000 else None
        if rest is None:
            raise ValueError("could not draw enough distinct pairs; lower n_ratings")
        keys = np.concatenate([keys, rng.choice(rest, size=n_ratings - keys.size, replace=False)])
    keys = keys[:n_ratings]
    return keys // n_movies, keys % n_movies


def _timestamps(rng: np.random.Generator, users: np.ndarray, n_users: int) -> np.ndarray:
    """Strictly increasing per user, in the order the pairs were drawn."""
    start = rng.integers(880_000_000, 1_500_000_000, size=n_users)
    order = np.argsort(users, kind="stable")
    gaps = rng.exponential(86_400.0, size=users.size).astype(np.int64) + 1
    sorted_users = users[order]
    csum = np.cumsum(gaps[order])
    first = np.r_[True, sorted_users[1:] != sorted_users[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(users.size), 0))
    offset = csum - csum[group_start] + gaps[order][group_start]
    out = np.empty(users.size, dtype=np.int64)
    out[order] = start[sorted_users] + offset
    return out


def _titles(rng: np.random.Generator, n: int, *, with_commas: bool) -> list[str]:
    words = np.array(_WORDS)
    a = words[rng.integers(0, len(words), size=n)]
    b = words[rng.integers(0, len(words), size=n)]
    titles = []
    for i in range(n):
        t = f"{a[i]} {b[i]} {i + 1}"
        if i % 7 == 3:
            t = f"{t}, The"
        elif with_commas and i % 11 == 5:
            t = f"{a[i]}, {b[i]}, and {i + 1}"
        titles.append(t)
    return titles


def _write(path: Path, lines: list[str], encoding: str) -> None:
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding) if lines else b"")


def _ratings_lines(sep: str, users, movies, ratings, times, half: bool) -> list[str]:
    fmt = f"{{}}{sep}{{}}{sep}{{:.1f}}{sep}{{}}" if half else f"{{}}{sep}{{}}{sep}{{}}{sep}{{}}"
    r = ratings.tolist() if half else ratings.astype(np.int64).tolist()
    return list(map(fmt.format, users.tolist(), movies.tolist(), r, times.tolist()))


def _zip_code(rng: np.random.Generator) -> str:
    return f"{int(rng.integers(10000, 99999)):05d}"


def _write_100k(out, rng, titles, years, genre_lists, n_users, users, movies, ratings, times) -> None:
    _write(out / "u.data", _ratings_lines("\t", users, movies, ratings, times, half=False), "latin-1")
    items = []
    for i, title in enumerate(titles):
        y = int(years[i])
        flags = ["0"] * len(GENRES_100K)
        for g in genre_lists[i]:
            flags[GENRES_100K.index(g)] = "1"
        if not genre_lists[i]:
            flags[0] = "1"
        url = f"http://us.imdb.com/M/title-exact?{title.replace(' ', '%20')}%20({y})"
        items.append("|".join([str(i + 1), f"{title} ({y})", f"01-Jan-{y}", "", url, *flags]))
    _write(out / "u.item", items, "latin-1")
    ages = rng.integers(7, 74, size=n_users)
    genders = rng.choice(["F", "M"], size=n_users, p=[0.3, 0.7])
    occs = rng.choice(list(ML100K_OCCUPATIONS), size=n_users)
    _write(
        out / "u.user",
        [f"{u + 1}|{ages[u]}|{genders[u]}|{occs[u]}|{_zip_code(rng)}" for u in range(n_users)],
        "latin-1",
    )
    (out / "u.genre").write_bytes(
        ("\n".join(f"{g}|{i}" for i, g in enumerate(GENRES_100K)) + "\n\n").encode()
    )
    _write(out / "u.occupation", list(ML100K_OCCUPATIONS), "latin-1")
    _write(out / "u.info", [f"{n_users} users", f"{len(titles)} items", f"{users.size} ratings"], "latin-1")


def _write_1m(out, rng, titles, years, genre_lists, n_users, users, movies, ratings, times) -> None:
    _write(out / "ratings.dat", _ratings_lines("::", users, movies, ratings, times, half=False), "latin-1")
    _write(
        out / "movies.dat",
        [f"{i + 1}::{t} ({int(years[i])})::{'|'.join(genre_lists[i])}" for i, t in enumerate(titles)],
        "latin-1",
    )
    ages = rng.choice(ML1M_AGES, size=n_users)
    genders = rng.choice(["F", "M"], size=n_users, p=[0.3, 0.7])
    occs = rng.choice(list(range(len(ML1M_OCCUPATIONS))), size=n_users)
    _write(
        out / "users.dat",
        [f"{u + 1}::{genders[u]}::{ages[u]}::{occs[u]}::{_zip_code(rng)}" for u in range(n_users)],
        "latin-1",
    )


def _csv_field(value: str) -> str:
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if any(c in value for c in ',"\n') else value


def _write_latest(out, rng, titles, years, genre_lists, users, movies, ratings, times) -> None:
    lines = ["userId,movieId,rating,timestamp"]
    lines += _ratings_lines(",", users, movies, ratings, times, half=True)
    _write(out / "ratings.csv", lines, "utf-8")
    movie_lines = ["movieId,title,genres"]
    for i, t in enumerate(titles):
        genres = "|".join(genre_lists[i]) or "(no genres listed)"
        movie_lines.append(f"{i + 1},{_csv_field(f'{t} ({int(years[i])})')},{genres}")
    _write(out / "movies.csv", movie_lines, "utf-8")
    imdb = rng.choice(9_000_000, size=len(titles), replace=False) + 100_000
    links = ["movieId,imdbId,tmdbId"]
    links += [f"{i + 1},{imdb[i]:07d},{'' if i % 50 == 49 else i + 1000}" for i in range(len(titles))]
    _write(out / "links.csv", links, "utf-8")
