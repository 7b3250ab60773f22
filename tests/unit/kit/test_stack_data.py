"""`recsys up` keeps model and catalog on the data it is given (issue #14): an artifact trained on
other data is retrained, and a workdir whose catalog holds another data set is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recsys_data.holdout import write_holdout
from recsys_data.synthetic import generate
from recsys_tools import stack


def test_a_holdout_differs_from_its_source_and_the_workdir_guard_refuses_the_mix(tmp_path: Path) -> None:
    source = generate(tmp_path / "src", fmt="100k", n_users=30, n_movies=40, n_ratings=600, seed=2)
    held = tmp_path / "held"
    write_holdout(source, held)
    a, b = stack.data_content_sha256(source), stack.data_content_sha256(held)
    assert a != b and len(a) == 64
    work = tmp_path / "var"
    work.mkdir()
    stack._check_workdir_data(work, source, a)  # nothing loaded yet: fine
    (work / stack.DATA_FILE).write_text(json.dumps({"data": str(source), "content_sha256": a}))
    stack._check_workdir_data(work, source, a)  # same data again: fine
    with pytest.raises(SystemExit, match="another --workdir"):
        stack._check_workdir_data(work, held, b)


def test_artifact_data_checksum_comes_from_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(
        json.dumps({"dataset": {"name": "x", "content_sha256": "ab" * 32}})
    )
    assert stack.artifact_data_sha256(tmp_path) == "ab" * 32
    (tmp_path / "manifest.json").write_text(json.dumps({"dataset": {"name": "x"}}))
    assert stack.artifact_data_sha256(tmp_path) is None


def test_the_gateway_gets_the_quiz_floor_the_artifact_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECSYS_GATEWAY_SAMPLE_MIN_RATINGS", raising=False)
    gateway = next(s for s in stack.SERVICES if s.name == "gateway")
    arts = tmp_path / "artifacts"
    env = stack.service_env(gateway, workdir=tmp_path, artifacts=arts, host="127.0.0.1", offset=0)
    assert "RECSYS_GATEWAY_SAMPLE_MIN_RATINGS" not in env  # no artifact: the gateway's default
    (arts / "v1").mkdir(parents=True)
    (arts / "latest").write_text("v1\n")
    manifest = {"models": {"pinsage": {"serving": {"quiz": {"min_ratings": 150, "dislike_weight": 0.25}}}}}
    (arts / "v1" / "manifest.json").write_text(json.dumps(manifest))
    env = stack.service_env(gateway, workdir=tmp_path, artifacts=arts, host="127.0.0.1", offset=0)
    assert env["RECSYS_GATEWAY_SAMPLE_MIN_RATINGS"] == "150"


def test_the_gateway_gets_the_popularity_rule_the_artifact_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("RECSYS_GATEWAY_POPULAR_RANKING", "RECSYS_GATEWAY_POPULAR_HALF_LIFE_DAYS"):
        monkeypatch.delenv(var, raising=False)
    gateway = next(s for s in stack.SERVICES if s.name == "gateway")
    arts = tmp_path / "artifacts"
    (arts / "v1").mkdir(parents=True)
    (arts / "latest").write_text("v1\n")
    popularity = {"ranking": "recent", "half_life_days": 3.0, "name": "recent/3"}
    manifest = {"models": {"pinsage": {"serving": {"popularity": popularity}}}}
    (arts / "v1" / "manifest.json").write_text(json.dumps(manifest))
    env = stack.service_env(gateway, workdir=tmp_path, artifacts=arts, host="127.0.0.1", offset=0)
    assert env["RECSYS_GATEWAY_POPULAR_RANKING"] == "recent"
    assert env["RECSYS_GATEWAY_POPULAR_HALF_LIFE_DAYS"] == "3.0"
    assert "RECSYS_GATEWAY_SAMPLE_MIN_RATINGS" not in env
    monkeypatch.setenv("RECSYS_GATEWAY_POPULAR_RANKING", "most_rated")  # the operator wins
    env = stack.service_env(gateway, workdir=tmp_path, artifacts=arts, host="127.0.0.1", offset=0)
    assert "RECSYS_GATEWAY_POPULAR_RANKING" not in env


def test_catalog_gets_add_movies_upstreams(tmp_path: Path) -> None:
    """`recsys up` points the catalog at the embedder and retriever (AddMovies, issue #20)."""
    catalog = next(s for s in stack.SERVICES if s.name == "catalog")
    ports = {s.name: s.port for s in stack.SERVICES}
    env = stack.service_env(catalog, workdir=tmp_path, artifacts=tmp_path, host="0.0.0.0", offset=7)
    assert env["RECSYS_CATALOG_EMBEDDER_TARGET"] == f"127.0.0.1:{ports['embedder'] + 7}"
    assert env["RECSYS_CATALOG_RETRIEVER_TARGET"] == f"127.0.0.1:{ports['retriever'] + 7}"
