"""recsys_core.demographics: the one home of the MovieLens demographic vocabularies (issue #17)."""

from __future__ import annotations

from pathlib import Path

import pytest
from recsys_core import demographics as d

ROOT = Path(__file__).resolve().parents[3]
SOURCES = [ROOT / "libs", ROOT / "services", ROOT / "gateway", ROOT / "web"]


def test_age_brackets_and_genders() -> None:
    ages = (None, 0, 1, 12, 18, 24, 25, 44, 45, 49, 50, 55, 56, 90)
    assert [d.age_bracket(a) for a in ages] == [0, 0, 1, 1, 2, 2, 3, 4, 5, 5, 6, 6, 7, 7]
    assert [d.gender_index(g) for g in ("F", "m", "male", None, "", "x")] == [1, 2, 2, 0, 0, 0]


@pytest.mark.parametrize(
    ("value", "name"),
    [("12", "programmer"), (" Technician ", "technician"), ("0", "other"), ("20", "writer"),
     ("21", None), ("²", None), ("astronaut", None), ("K-12 Student", "k-12 student")],
)  # fmt: skip
def test_normalise_occupation(value: str, name: str | None) -> None:
    assert d.normalise_occupation(value) == name


def test_candidates_map_both_ways() -> None:
    assert d.occupation_candidates("engineer") == ["engineer", "technician/engineer"]
    assert d.occupation_candidates("technician/engineer") == ["technician/engineer", "engineer", "technician"]
    assert d.occupation_candidates("writer") == ["writer"]
    for k, v in d.ML100K_TO_ML1M.items():
        assert k in d.ML100K_OCCUPATIONS and v in d.ML1M_OCCUPATIONS


def test_vocabularies_are_spelt_out_only_here() -> None:
    """No other source file lists an occupation vocabulary or the age brackets again."""
    home = Path(d.__file__).resolve()
    markers = (
        '"academic/educator"',
        '"librarian"',
        "(1, 18, 25, 35, 45, 50, 56)",
        "[1, 18, 25, 35, 45, 50, 56]",
    )
    offenders = []
    for root in SOURCES:
        for path in root.rglob("*.py"):
            if path.resolve() == home or ".venv" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            offenders += [f"{path.relative_to(ROOT)}: {m}" for m in markers if m in text]
    assert not offenders, offenders
