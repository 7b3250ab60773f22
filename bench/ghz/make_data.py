"""Write realistic call data for the gateway's ghz configs from a loaded MovieLens data set.

    python bench/ghz/make_data.py [--dataset ml-100k] [--out bench/ghz/data] [-n 1000] [--seed 7]

The ids come from the data set the stack serves (``recsys up`` loads ml-100k by default),
drawn the way traffic would draw them: users uniformly among users with ratings, movies
by popularity (rating count), anonymous taste profiles from real users' histories. Each
file is a JSON array of request messages (protobuf JSON, snake_case field names) that
ghz and recsys_tools.loadgen send round-robin:

    recommend_user.json         Recommend for a known user_id
    recommend_anonymous.json    Recommend for a quiz profile (liked with ratings, disliked ids)
    recommend_demographic.json  Recommend for a new user from demographics (data sets with users)
    similar.json                SimilarMovies for a movie
    get_movies.json             GetMovies for 10..50 ids
    search.json                 SearchMovies with title words
    sample.json                 SampleMovies, the 16-movie quiz with different seeds
    record_feedback.json        RecordFeedback for bench-only users (ids from 10,000,000 up)

The files are derived from MovieLens and are not committed (bench/ghz/.gitignore).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH_USER_BASE = 10_000_000  # RecordFeedback writes go to users no data set has
_GENDERS = {"M": "GENDER_MALE", "F": "GENDER_FEMALE"}
_STOP = {"the", "a", "an", "of", "and", "in", "to", "la", "le", "les", "el", "de", "der", "die", "das"}


def build(dataset: Any, n: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Request arrays for each gateway RPC, ``n`` messages each, reproducible for a seed."""
    rng = random.Random(seed)
    inter = dataset.interactions
    if len(inter) == 0:
        raise SystemExit(f"{dataset.name}: no ratings; load a data set with ratings")
    history: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for u, m, r in zip(
        inter.user_ids.tolist(), inter.movie_ids.tolist(), inter.ratings.tolist(), strict=True
    ):
        history[int(u)].append((int(m), float(r)))
    users = sorted(history)
    counts = Counter(int(m) for m in inter.movie_ids.tolist())
    popular = [m for m, _ in counts.most_common()]
    weights = [counts[m] for m in popular]
    titles = {mv.movie_id: mv.title for mv in dataset.movies}

    def movies_by_popularity(k: int) -> list[int]:
        return rng.choices(popular, weights=weights, k=k)

    out: dict[str, list[dict[str, Any]]] = {}
    out["recommend_user"] = [{"user_id": rng.choice(users), "k": 10} for _ in range(n)]

    anonymous: list[dict[str, Any]] = []
    while len(anonymous) < n:
        rated = history[rng.choice(users)]
        picked = rng.sample(rated, min(len(rated), rng.randint(5, 20)))
        liked = [{"movie_id": m, "rating": r} for m, r in picked if r >= 3.5]
        disliked = [m for m, r in picked if r <= 2.0][:5]
        if liked:
            msg: dict[str, Any] = {"liked": liked, "k": 10}
            if disliked:
                msg["disliked_movie_ids"] = disliked
            anonymous.append(msg)
    out["recommend_anonymous"] = anonymous

    with_demo = [u for u in dataset.users if u.gender or u.age or u.occupation]
    if with_demo:
        demo: list[dict[str, Any]] = []
        for _ in range(n):
            u = rng.choice(with_demo)
            d: dict[str, Any] = {}
            if u.gender in _GENDERS:
                d["gender"] = _GENDERS[u.gender]
            if u.age:
                d["age"] = int(u.age)
            if u.occupation:
                d["occupation"] = u.occupation
            if u.zip_code:
                d["zip_code"] = u.zip_code[:16]
            demo.append({"demographics": d, "k": 10})
        out["recommend_demographic"] = demo

    out["similar"] = [{"movie_id": m, "k": 10} for m in movies_by_popularity(n)]
    out["get_movies"] = [{"movie_ids": movies_by_popularity(rng.randint(10, 50))} for _ in range(n)]

    searches: list[dict[str, Any]] = []
    for m in movies_by_popularity(n * 2):
        words = [w for w in re.findall(r"[A-Za-z0-9']+", titles.get(m, "")) if w.lower() not in _STOP]
        if words:
            searches.append({"query": " ".join(words[: rng.randint(1, 2)]).lower(), "limit": 10})
        if len(searches) == n:
            break
    out["search"] = searches
    out["sample"] = [{"n": 16, "seed": i + 1} for i in range(n)]
    out["record_feedback"] = [
        {
            "ratings": [
                {"user_id": BENCH_USER_BASE + i, "movie_id": m, "rating": float(rng.randint(1, 5))}
                for m in dict.fromkeys(movies_by_popularity(rng.randint(1, 5)))
            ]
        }
        for i in range(n)
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="ml-100k", help="name, zip or folder (recsys_data.load_dataset)")
    p.add_argument("--out", default=str(HERE / "data"), help="output folder")
    p.add_argument("-n", type=int, default=1000, help="messages per file")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    try:
        from recsys_data import DatasetNotFound, load_dataset
    except ImportError as exc:  # pragma: no cover
        print(f"make_data: recsys_data is not available: {exc}", file=sys.stderr)
        return 1
    try:
        dataset = load_dataset(args.dataset)
    except DatasetNotFound as exc:
        print(f"make_data: {exc}", file=sys.stderr)
        return 1
    files = build(dataset, args.n, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, messages in files.items():
        (out / f"{name}.json").write_text(
            json.dumps(messages, separators=(",", ":")) + "\n", encoding="utf-8"
        )
        print(f"{out / name}.json: {len(messages)} messages")
    skipped = {"recommend_demographic"} - files.keys()
    if skipped:
        print(f"({dataset.name} has no user demographics: no recommend_demographic.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
