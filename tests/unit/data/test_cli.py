from __future__ import annotations

import json
from pathlib import Path

import pytest
from recsys_tools.cli import main


def test_generate_then_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ml-syn"
    args = ["data", "generate", str(out), "--format", "1m", "--users", "20", "--movies", "30"]
    assert main([*args, "--ratings", "150", "--seed", "2", "--zip"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "ml-syn.zip")
    assert main(["data", "summary", str(tmp_path / "ml-syn.zip"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ratings"] == 150 and summary["users"] == 20 and summary["format"] == "1m"
    assert main(["data", "summary", str(out)]) == 0
    assert "ratings" in capsys.readouterr().out


def test_summary_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,9,1\n")
    (tmp_path / "bad" / "movies.csv").write_text("movieId,title,genres\n1,A (2000),Drama\n")
    assert main(["data", "summary", str(tmp_path / "bad")]) == 1
    assert "ratings.csv line 2: rating 9 is off the scale" in capsys.readouterr().err
    assert main(["data", "summary", str(tmp_path / "bad"), "--lenient", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["skipped_rows"] == 1


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "ml-100k" in out and "ml-32m" in out


def test_fetch_refuses_unverified(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fetch", "ml-32m", "--dest", str(tmp_path), "--no-progress"]) == 1
    assert "--insecure-skip-checksum" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
