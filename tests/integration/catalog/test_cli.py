"""``python -m recsys_catalog migrate | load | describe`` against a real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recsys_catalog.__main__ import main
from recsys_catalog.migrate import REQUIRED_SCHEMA_VERSION
from recsys_data import Dataset

pytestmark = pytest.mark.postgres


def test_migrate_load_describe(
    pg_dsn: str,
    dataset_dir: Path,
    dataset: Dataset,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RECSYS_CATALOG_DSN", pg_dsn)
    assert main(["describe"]) == 1  # no schema yet: a clear error, not a traceback
    assert "recsys catalog migrate" in capsys.readouterr().err
    assert main(["migrate"]) == 0
    assert "applied [1, 2, 3, 4, 5]" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert "up to date" in capsys.readouterr().out
    for _ in range(2):  # re-runnable
        assert main(["load", str(dataset_dir), "--no-progress"]) == 0
        assert f"{len(dataset.interactions)} ratings" in capsys.readouterr().out
    assert main(["describe"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["movies"] == len(dataset.movies) and info["ratings"] == len(dataset.interactions)
    assert info["schema_version"] == REQUIRED_SCHEMA_VERSION == 5


def test_bad_settings_exit_cleanly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RECSYS_CATALOG_POOL_MIN", "not-a-number")
    assert main(["describe"]) == 1
    assert "RECSYS_CATALOG_POOL_MIN" in capsys.readouterr().err
