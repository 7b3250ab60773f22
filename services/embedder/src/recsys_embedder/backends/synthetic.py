"""Small artifacts for tests and the benchmark: an UNTRAINED PinSage network (random weights)
over a generated data set, written with the training engineer's ``save_artifact``, plus an
optional two-tower section trained for one epoch. Not for recommendations."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys_embedder.artifacts import MANIFEST, PinSageArrays, save_artifact, save_two_tower
from recsys_embedder.model.features import FeatureSpec, movie_features
from recsys_embedder.model.pinsage import ModelConfig, PinSageNet


def make_artifact(
    root: str | Path,
    version: str,
    dataset: Any,
    *,
    dim: int = 16,
    n_neighbours: int = 5,
    seed: int = 0,
    two_tower: bool = True,
    default_form: str = "pinsage",
) -> Path:
    """Write ``<root>/<version>/`` for ``dataset`` (a ``recsys_data`` Dataset) and point
    ``latest`` at it. Returns the version folder."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    movies = sorted(dataset.movies, key=lambda m: m.movie_id)
    n = len(movies)
    genres = tuple(dataset.genres)
    counts = np.zeros(n, np.int64)
    movie_ids = np.array([m.movie_id for m in movies], np.int64)
    pos = np.searchsorted(movie_ids, dataset.interactions.movie_ids)
    np.add.at(counts, pos, 1)
    spec = FeatureSpec(
        genres=genres, title_buckets=256, title_len=6, pop_log_max=float(np.log1p(counts.max()))
    )
    dense, tokens = movie_features(spec, [m.title for m in movies], [m.year for m in movies],
                                   [m.genres for m in movies], counts)  # fmt: skip
    cfg = ModelConfig(
        n_items=n,
        dense_dim=spec.dense_dim,
        title_buckets=spec.title_buckets,
        dim=dim,
        hidden=dim,
        user_window=8,
    )
    net = PinSageNet(cfg).eval()
    with torch.no_grad():  # make the learned user weights non-trivial
        net.rat_w.weight.normal_(0.0, 0.5)
    nbr = rng.integers(0, n, size=(n, n_neighbours)).astype(np.int64)
    w = rng.integers(1, 20, size=(n, n_neighbours)).astype(np.float32)
    with torch.no_grad():
        emb = net.embed_items(torch.from_numpy(dense), torch.from_numpy(tokens), torch.from_numpy(nbr),
                              torch.from_numpy(w)).numpy()  # fmt: skip
    manifest: dict[str, Any] = {
        "dataset": {
            "name": getattr(dataset, "name", "synthetic"),
            "sha256": getattr(dataset, "sha256", None),
        },
        "trained_at": dt.datetime(2026, 11, 23, 10, 15, tzinfo=dt.UTC).isoformat(),
        "seed": seed,
        "metrics": {"test/hr@10": 0.1, "valid/hr@10": 0.12},
        "models": {
            "pinsage": {
                "model_config": cfg.to_json(),
                "feature_spec": spec.to_json(),
                "default_form": default_form,
            }
        },
    }
    arrays = PinSageArrays(
        state_dict=net.state_dict(),
        item_embeddings=emb,
        movie_ids=movie_ids,
        neighbour_ids=nbr,
        neighbour_weights=w,
        item_dense=dense,
        item_title_tokens=tokens,
    )
    folder = save_artifact(root, version, arrays, manifest)
    if two_tower:
        from recsys_data.split import leave_last_out

        from recsys_embedder.training.two_tower import train_two_tower

        train, _, _ = leave_last_out(dataset.interactions)
        tt = train_two_tower(dataset, train, seed=seed, epochs=1, dim=8, embed=4, hidden=8, title_buckets=256)
        section = save_two_tower(tt, folder)
        m = json.loads((folder / MANIFEST).read_text())
        m["models"]["two_tower"] = section
        (folder / MANIFEST).write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    return folder


def tiny_dataset(
    tmp: str | Path, *, n_users: int = 40, n_movies: int = 60, n_ratings: int = 600, seed: int = 0
) -> Any:
    """A generated ml-100k-format data set (with demographics), loaded."""
    from recsys_data import load_dataset
    from recsys_data.synthetic import generate

    path = generate(Path(tmp) / "synthetic-100k", fmt="100k", n_users=n_users, n_movies=n_movies,
                    n_ratings=n_ratings, seed=seed)  # fmt: skip
    return load_dataset(path)
