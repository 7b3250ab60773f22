"""Served quality (issue #14): a stack brought up on `recsys data holdout` of a generated data set,
scored through the gateway by `recsys evaluate --through`, equals the offline evaluation of the
same artifact on the same users (user id and timed forms), and the refuse-TEST rule holds."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import _port_offset

pytest.importorskip("dgl", reason="training needs the embedder's [train] extra (DGL)")

# Served vs offline, same artifact, same users: the query network and Milvus' exact inner-product
# search against torch's; only float ties may differ.
TOLERANCE = 0.02
TRAIN_ARGS = "--epochs 3 --max-steps-per-epoch 25 --quiet --seed 1 --no-two-tower"


@dataclass
class HeldOutStack:
    source: Path
    holdout: Path
    artifacts: Path
    gateway: str


@pytest.fixture(scope="module")
def heldout_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeldOutStack]:
    from recsys_data.holdout import write_holdout
    from recsys_data.synthetic import generate

    root = tmp_path_factory.mktemp("served")
    source = generate(root / "ml-gen", fmt="100k", n_users=120, n_movies=200, n_ratings=6000, seed=3)
    holdout = root / "ml-gen-heldout"
    write_holdout(source, holdout)
    workdir, artifacts = root / "var", root / "artifacts"
    offset = _port_offset()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RECSYS_CATALOG_DSN", None)
    cmd = [
        sys.executable, "-m", "recsys_tools.cli", "up", "--detach", "--data", str(holdout),
        "--workdir", str(workdir), "--artifacts", str(artifacts), "--port-offset", str(offset),
        "--train-args", TRAIN_ARGS,
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"recsys up failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    try:
        yield HeldOutStack(source, holdout, artifacts, f"127.0.0.1:{50051 + offset}")
    finally:
        subprocess.run(
            [sys.executable, "-m", "recsys_tools.cli", "down", "--workdir", str(workdir)],
            timeout=120,
            check=False,
        )


def _evaluate(argv: list[str]) -> int:
    from recsys_embedder.evaluation import cli as eval_cli

    parser = argparse.ArgumentParser(prog="recsys")
    eval_cli.register(parser.add_subparsers())
    args = parser.parse_args(["evaluate", *argv])
    return int(args.func(args))


def test_served_equals_offline_for_the_same_artifact(
    heldout_stack: HeldOutStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    st = heldout_stack
    report = tmp_path / "served.json"
    code = _evaluate(
        ["--artifact", str(st.artifacts), "--data", str(st.source), "--through", st.gateway,
         "--json", str(report), "--concurrency", "4", "--quiz-draws", "2"]
    )  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    out = json.loads(report.read_text())
    rows = {r["form"]: r for r in out["rows"]}
    assert out["users"] == 120
    for form in ("user_id", "liked+ratings+times", "liked+times", "ordered", "quiz x1", "quiz x3"):
        row = rows[form]
        assert row["errors"] == {}, (form, row["errors"])
        s, o = row["served"], row["offline"]
        assert abs(s["hr@10"] - o["hr@10"]) <= TOLERANCE, (form, s, o)
        assert abs(s["ndcg@10"] - o["ndcg@10"]) <= TOLERANCE, (form, s, o)
        assert row["draws"] == (2 if form.startswith("quiz") else 1), form
        assert row["same_hits"] >= 0.97 * out["users"] * row["draws"], (form, row["same_hits"])
    # untimed list order = event order: the ordered form is the timed one without ratings
    assert abs(rows["ordered"]["served"]["hr@10"] - rows["liked+times"]["served"]["hr@10"]) <= TOLERANCE
    assert rows["user_id"]["served"]["hr@10"] > 0  # the model is not trivially empty
    assert "most popular" in printed.out and "| user_id |" in printed.out


def test_refuse_test_numbers_for_an_artifact_that_trained_on_them(
    heldout_stack: HeldOutStack, capsys: pytest.CaptureFixture[str]
) -> None:
    st = heldout_stack
    # on its own training data (every event, TEST included): refused, with the recipe
    assert _evaluate(["--artifact", str(st.artifacts), "--data", str(st.holdout), "--no-baselines"]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "recsys data holdout" in err
    # on the source it was held out of: TEST only
    assert _evaluate(["--artifact", str(st.artifacts), "--data", str(st.source), "--no-baselines"]) == 0
    out = capsys.readouterr().out
    assert "TEST only" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("| pinsage/pinsage |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] != "–" and cells[5] == "–"  # test hr@10 reported, valid hr@10 not
    # a bad --quiz-draws is refused before any call
    bad = [
        "--artifact",
        str(st.artifacts),
        "--data",
        str(st.source),
        "--through",
        st.gateway,
        "--quiz-draws",
        "0",
    ]
    assert _evaluate(bad) == 2
    assert "--quiz-draws must be >= 1" in capsys.readouterr().err
