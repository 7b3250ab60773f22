"""A short end-to-end train + evaluate on generated data, through the CLI functions."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
pytest.importorskip("dgl", reason="training needs the embedder's [train] extra (DGL)")


def _parser() -> argparse.ArgumentParser:
    from recsys_embedder.evaluation import cli as eval_cli
    from recsys_embedder.training import cli as train_cli

    parser = argparse.ArgumentParser(prog="recsys")
    sub = parser.add_subparsers()
    train_cli.register(sub)
    eval_cli.register(sub)
    return parser


def test_train_then_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from recsys_data.synthetic import generate
    from recsys_embedder.artifacts import load_artifact

    data = generate(tmp_path / "ml-gen", fmt="latest", n_users=50, n_movies=70, n_ratings=1200, seed=1)
    out = tmp_path / "artifacts"
    parser = _parser()
    args = parser.parse_args(
        ["train", "--data", str(data), "--out", str(out), "--epochs", "2", "--dim", "16", "--walks", "30",
         "--neighbours", "4", "--batch-size", "64", "--quiet", "--baselines", "--no-refit"]
    )  # fmt: skip
    assert args.func(args) == 0
    version = (out / "latest").read_text().strip()
    manifest = json.loads((out / version / "manifest.json").read_text())
    assert manifest["dataset"]["name"] == "ml-gen" and len(manifest["dataset"]["content_sha256"]) == 64
    assert manifest["split"]["events"]["test"] == 50
    assert manifest["trained_on"]["events"] == "train" and manifest["models"]["pinsage"]["refit"] is None
    assert manifest["models"]["pinsage"]["serving"]["history_rule"]["low_rating"] in (
        "history",
        "ignore",
        "dislike",
    )
    assert set(manifest["models"]["pinsage"]["metrics"]) == {"latest", "mean", "recency", "pinsage"}
    assert {"popular", "item-knn", "ease", "bpr-mf"} <= set(manifest["baselines"])
    assert "test/hr@10" in manifest["metrics"] and manifest["git_revision"]
    assert not list((out / ".checkpoints").glob("*.pt")), "checkpoint removed after a finished run"
    art = load_artifact(out)
    assert art.item_embeddings.shape == (70, 16)
    np.testing.assert_allclose(np.linalg.norm(art.item_embeddings, axis=1), 1.0, atol=1e-5)
    capsys.readouterr()

    report = tmp_path / "eval.json"
    args = parser.parse_args(["evaluate", "--artifact", str(out), "--data", str(data), "--json", str(report)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    for name in ("popular", "item-knn", "ease", "bpr-mf", "pinsage/pinsage", "pinsage/latest"):
        assert f"| {name} |" in printed
    results = json.loads(report.read_text())
    # the evaluation recomputes the same PinSage numbers the training run stored
    assert results["pinsage"] == manifest["models"]["pinsage"]["metrics"]
    assert results["best_form_on_validation"] == manifest["models"]["pinsage"]["default_form"]
