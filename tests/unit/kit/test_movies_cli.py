"""`recsys movies add FILE`: reading CSV and JSON movie files (bad files name row and field)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from recsys_tools.cli import main
from recsys_tools.movies_cli import FileError, parse_movies


def test_csv(tmp_path: Path) -> None:
    f = tmp_path / "new.csv"
    f.write_text(
        "movie_id,title,year,genres,similar_movie_ids\n"
        '900001,"Brand New, Part 1",2026,Drama|Sci-Fi,1|50\n'
        "900002,Quiet One,,,\n"
    )
    a, b = parse_movies(f)
    assert (a.movie.movie_id, a.movie.title, a.movie.year) == (900001, "Brand New, Part 1", 2026)
    assert list(a.movie.genres) == ["Drama", "Sci-Fi"] and list(a.similar_movie_ids) == [1, 50]
    assert (b.movie.year, list(b.movie.genres), list(b.similar_movie_ids)) == (0, [], [])


def test_json_list_or_object(tmp_path: Path) -> None:
    movies = [{"movie_id": 7, "title": "T", "year": 2001, "genres": ["Comedy"], "similar_movie_ids": [1, 2]}]
    for i, doc in enumerate((movies, {"movies": movies})):
        f = tmp_path / f"m{i}.json"
        f.write_text(json.dumps(doc))
        (m,) = parse_movies(f)
        assert (m.movie.movie_id, list(m.movie.genres), list(m.similar_movie_ids)) == (7, ["Comedy"], [1, 2])


@pytest.mark.parametrize(
    ("text", "name", "message"),
    [
        ("title,year\nX,2000\n", "a.csv", "movie_id: required"),
        ("movie_id,title,year\n1,X,soon\n", "a.csv", "row 2 year: expected an integer"),
        ("movie_id,title,rating\n1,X,5\n", "a.csv", "unknown field(s) ['rating']"),
        ("movie_id,title\n", "a.csv", "no movies"),
        ('{"movies": 3}', "a.json", "expected a list"),
        ("[{", "a.json", "not valid JSON"),
        ('[{"movie_id": 1, "title": "X", "similar_movie_ids": ["a"]}]', "a.json", "similar_movie_ids"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, name: str, message: str) -> None:
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(
        FileError,
        match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)"),
    ):
        parse_movies(f)


def test_bad_file_exits_2_before_any_call(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "a.csv"
    f.write_text("title\nX\n")
    # the catalog address is unreachable: the file is refused before any call is tried
    assert main(["movies", "add", str(f), "--catalog", "127.0.0.1:1"]) == 2
    assert "movie_id: required" in capsys.readouterr().err
    assert main(["movies", "add"]) == 2
    assert main(["movies", "not-an-id"]) == 2
