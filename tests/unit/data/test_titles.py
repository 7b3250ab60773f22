from __future__ import annotations

import pytest
from recsys_data import split_title


@pytest.mark.parametrize(
    ("raw", "title", "year"),
    [
        ("Toy Story (1995)", "Toy Story", 1995),
        ("Matrix, The (1999)", "Matrix, The", 1999),
        ("Misérables, Les (1995)", "Misérables, Les", 1995),
        ("Two Friends (1986) ", "Two Friends", 1986),
        ("Babylon 5", "Babylon 5", None),
        ("Big Bang Theory, The (2007-)", "Big Bang Theory, The", 2007),
        ("Fawlty Towers (1975–1979)", "Fawlty Towers", 1975),
        ("1984 (1984)", "1984", 1984),
        ("(500) Days of Summer (2009)", "(500) Days of Summer", 2009),
        ("unknown", "unknown", None),
    ],
)
def test_split_title(raw: str, title: str, year: int | None) -> None:
    assert split_title(raw) == (title, year)
