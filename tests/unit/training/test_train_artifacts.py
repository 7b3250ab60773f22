"""Determinism for a seed, checkpoint resume, and the artifact round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from recsys_embedder import artifacts as A
from recsys_embedder.training.train import TrainConfig, TrainResult, train

SMALL = TrainConfig(
    dim=16, hidden=16, n_neighbours=4, num_random_walks=30, epochs=2, batch_size=64, user_window=8, seed=5
)


def _quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def trained(tiny) -> TrainResult:  # type: ignore[no-untyped-def]
    return train(tiny, SMALL, log=_quiet, progress=False)


def test_same_seed_same_model(tiny, trained: TrainResult) -> None:  # type: ignore[no-untyped-def]
    again = train(tiny, SMALL, log=_quiet, progress=False)
    np.testing.assert_array_equal(trained.item_embeddings, again.item_embeddings)
    np.testing.assert_array_equal(trained.nbr_ids, again.nbr_ids)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in trained.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in again.history]


def test_interrupted_run_resumes_to_the_same_result(tiny, trained: TrainResult, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ck = tmp_path / "ck.pt"
    first = TrainConfig(**{**SMALL.to_json(), "epochs": 1})
    train(tiny, first, checkpoint=ck, log=_quiet, progress=False)  # "interrupted" after epoch 1
    resumed = train(tiny, SMALL, checkpoint=ck, log=_quiet, progress=False)
    np.testing.assert_array_equal(trained.item_embeddings, resumed.item_embeddings)


def test_embeddings_normalised(trained: TrainResult) -> None:
    assert trained.item_embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(trained.item_embeddings, axis=1), 1.0, atol=1e-5)


def _save(tiny, trained: TrainResult, root: Path, version: str) -> Path:  # type: ignore[no-untyped-def]
    arrays = A.PinSageArrays(
        state_dict=trained.model.state_dict(),
        item_embeddings=trained.item_embeddings,
        movie_ids=tiny.movie_ids,
        neighbour_ids=trained.nbr_ids,
        neighbour_weights=trained.nbr_w,
        item_dense=trained.item_dense,
        item_title_tokens=trained.item_tokens,
    )
    manifest = {
        "dataset": {"name": tiny.name, "sha256": tiny.sha256},
        "metrics": {"test/hr@10": 0.5},
        "models": {
            "pinsage": {
                "default_form": "recency",
                "model_config": trained.model_config.to_json(),
                "feature_spec": trained.feature_spec.to_json(),
            }
        },
    }
    return A.save_artifact(root, version, arrays, manifest)


def test_artifact_round_trip(tiny, trained: TrainResult, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = _save(tiny, trained, tmp_path, "20260101T000000Z-tiny")
    assert (tmp_path / "latest").read_text().strip() == folder.name
    art = A.load_artifact(tmp_path)  # follows `latest`
    assert art.version == folder.name and art.default_form == "recency" and art.dimension == 16
    np.testing.assert_array_equal(art.item_embeddings, trained.item_embeddings)
    np.testing.assert_array_equal(art.movie_ids, tiny.movie_ids)
    # the loaded module recomputes the same embeddings from the stored tables
    with torch.no_grad():
        again = art.model.embed_items(
            torch.from_numpy(art.item_dense),
            torch.from_numpy(art.item_title_tokens),
            torch.from_numpy(art.neighbour_ids),
            torch.from_numpy(art.neighbour_weights),
        )
    np.testing.assert_allclose(again.numpy(), art.item_embeddings, atol=1e-5)
    # no pickles: every array loads with allow_pickle=False, weights with weights_only=True
    files = json.loads((folder / "manifest.json").read_text())["models"]["pinsage"]["files"]
    for name in files.values():
        if name.endswith(".npy"):
            np.load(folder / name, allow_pickle=False)
    torch.load(folder / files["weights"], weights_only=True)


def test_artifact_serving_helpers(tiny, trained: TrainResult, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    art = A.load_artifact(_save(tiny, trained, tmp_path, "v1"))
    ids = [int(m) for m in tiny.movie_ids[:5]]
    for form in ("latest", "mean", "recency", "pinsage"):
        vec, unknown = art.embed_user([*ids, 999_999], [5, 4, 3, 5, 1, 4], [1, 2, 3, 4, 5, 6], [ids[0]], form)
        assert vec.shape == (16,) and unknown == [999_999]
        assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-5
    latest, _ = art.embed_user(ids[:3], None, [3, 2, 1], form="latest")  # sorted by timestamp
    np.testing.assert_allclose(latest, art.item_embeddings[0], atol=1e-6)
    vec, unknown = art.embed_new_movie("A Brand New Film (2026)", 2026, ["Drama"], [*ids[:2], -7])
    assert vec.shape == (16,) and unknown == [-7]
    alone, _ = art.embed_new_movie("Solo", None, [])
    assert np.isfinite(alone).all()


def test_broken_artifact_is_an_error(tiny, trained: TrainResult, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = _save(tiny, trained, tmp_path, "v1")
    (folder / "item_embeddings.npy").unlink()
    with pytest.raises(A.ArtifactError):
        A.load_artifact(folder)
    with pytest.raises(A.ArtifactError):
        A.load_artifact(tmp_path / "nowhere")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_on_cuda_matches_shapes(tiny) -> None:  # type: ignore[no-untyped-def]
    res = train(tiny, TrainConfig(**{**SMALL.to_json(), "device": "cuda"}), log=_quiet, progress=False)
    assert res.item_embeddings.shape == (tiny.n_items, 16)
    np.testing.assert_allclose(np.linalg.norm(res.item_embeddings, axis=1), 1.0, atol=1e-5)
