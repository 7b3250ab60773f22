"""The refuse-TEST rule of `recsys evaluate` (issue #14 item 7), at the unit level."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

pytest.importorskip("torch")
from recsys_embedder.evaluation.cli import Refused, reportable_phases


@dataclass
class FakeData:
    name: str
    sha: str

    def content_sha256(self) -> str:
        return self.sha


def test_old_artifacts_without_a_record_report_both_phases() -> None:
    assert reportable_phases({}, FakeData("d", "a"))[0] == ("validation", "test")


def test_train_only_on_the_same_data_reports_both() -> None:
    m = {"trained_on": {"events": "train", "content_sha256": "a", "dataset": "d"}}
    assert reportable_phases(m, FakeData("d", "a"))[0] == ("validation", "test")


def test_trained_on_every_event_of_the_same_data_is_refused() -> None:
    m = {"trained_on": {"events": "all", "content_sha256": "a", "dataset": "d", "count": 10}}
    with pytest.raises(Refused, match="TEST and VALIDATION included"):
        reportable_phases(m, FakeData("d", "a"))


def test_trained_on_a_holdout_of_this_data_reports_test_only() -> None:
    m = {"trained_on": {"events": "all", "content_sha256": "h", "dataset": "d-heldout",
                        "holdout_of": {"source_content_sha256": "a"}}}  # fmt: skip
    phases, why = reportable_phases(m, FakeData("d", "a"))
    assert phases == ("test",) and "TEST only" in why


def test_other_data_is_refused() -> None:
    m = {"trained_on": {"events": "train", "content_sha256": "x", "dataset": "other", "holdout_of": None}}
    with pytest.raises(Refused, match="neither this data set"):
        reportable_phases(m, FakeData("d", "a"))
