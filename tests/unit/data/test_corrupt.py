"""Malformed files give DataFormatError naming file and line; lenient mode skips and counts."""

from __future__ import annotations

import logging
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from recsys_data import DataFormatError, DatasetNotFound, find_dataset, load_dataset


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_line(path: Path, lineno: int, edit: Callable[[bytes], bytes]) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[lineno - 1] = edit(lines[lineno - 1])
    path.write_bytes(b"\n".join(lines))


def test_truncated_line_message(small_sets: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(small_sets["100k"], tmp_path / "d")
    _edit_line(d / "u.data", 17, lambda b: b.rsplit(b"\t", 1)[0])
    with pytest.raises(DataFormatError) as info:
        load_dataset(d)
    assert str(info.value) == "u.data line 17: expected 4 tab-separated fields, got 3"
    assert (info.value.file, info.value.line) == ("u.data", 17)


# (format, file, line, edit, message fragment); header lines count (ratings.csv line 2 = first row)
CASES = [
    ("100k", "u.data", 5, lambda b: _set_field(b, b"\t", 2, b"6"), "rating 6 is off the scale 1..5"),
    ("100k", "u.data", 9, lambda b: _set_field(b, b"\t", 0, b"12a"), "user id '12a'"),
    ("100k", "u.data", 3, lambda b: b.replace(b"\t", b","), "expected 4 tab-separated fields, got 1"),
    ("100k", "u.data", 4, lambda b: _set_field(b, b"\t", 1, b"999"), "unknown movie id 999"),
    ("100k", "u.data", 6, lambda b: _set_field(b, b"\t", 2, b"3.5"), "rating '3.5'"),
    ("100k", "u.item", 2, lambda b: b.rsplit(b"|", 1)[0], "expected 24 '|'-separated fields, got 23"),
    ("100k", "u.user", 3, lambda b: _set_field(b, b"|", 2, b"X"), "gender 'X'"),
    ("1m", "ratings.dat", 8, lambda b: b.replace(b"::", b":", 1), "expected 4 '::'-separated fields"),
    ("1m", "ratings.dat", 2, lambda b: _set_field(b, b"::", 3, b"-5"), "timestamp '-5'"),
    ("1m", "ratings.dat", 2, lambda b: _set_field(b, b"::", 0, b"1_0"), "user id '1_0'"),
    ("1m", "movies.dat", 4, lambda b: _set_field(b, b"::", 0, b"3"), "duplicate movie id 3"),
    ("1m", "users.dat", 5, lambda b: _set_field(b, b"::", 3, b"21"), "occupation code '21'"),
    ("1m", "users.dat", 5, lambda b: _set_field(b, b"::", 2, b"30"), "age code '30'"),
    ("latest", "ratings.csv", 11, lambda b: _set_field(b, b",", 2, b"3.7"), "rating 3.7 is off the scale"),
    ("latest", "ratings.csv", 12, lambda b: _set_field(b, b",", 2, b"nan"), "rating 'nan'"),
    ("latest", "ratings.csv", 7, lambda b: b + b",extra", "expected 4 comma-separated fields, got 5"),
    ("latest", "ratings.csv", 9, lambda b: b + b"\xe9", "bad encoding"),
    ("latest", "ratings.csv", 1, lambda b: b"user,movie,rating,ts", "expected the header"),
    ("latest", "movies.csv", 3, lambda b: b.replace(b",", b";"), "expected 3 comma-separated fields, got 1"),
    ("latest", "links.csv", 4, lambda b: _set_field(b, b",", 1, b"tt1"), "imdbId 'tt1'"),
]


def _set_field(line: bytes, sep: bytes, index: int, value: bytes) -> bytes:
    parts = line.split(sep)
    parts[index] = value
    return sep.join(parts)


@pytest.mark.parametrize(("fmt", "file", "line", "edit", "fragment"), CASES)
def test_corruption_names_file_and_line(
    small_sets: dict[str, Path],
    tmp_path: Path,
    fmt: str,
    file: str,
    line: int,
    edit: Callable[[bytes], bytes],
    fragment: str,
) -> None:
    d = _copy(small_sets[fmt], tmp_path / "d")
    _edit_line(d / file, line, edit)
    with pytest.raises(DataFormatError) as info:
        load_dataset(d)
    assert info.value.file == file
    assert info.value.line == line
    assert str(info.value).startswith(f"{file} line {line}: ")
    assert fragment in info.value.message


def test_duplicate_rating_pair(small_sets: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(small_sets["1m"], tmp_path / "d")
    lines = (d / "ratings.dat").read_bytes().rstrip(b"\n").split(b"\n")
    lines.append(lines[4])
    (d / "ratings.dat").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(DataFormatError, match=rf"ratings.dat line {len(lines)}: duplicate rating"):
        load_dataset(d)


def test_lenient_skips_counts_and_warns_once(
    small_sets: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = _copy(small_sets["100k"], tmp_path / "d")
    _edit_line(d / "u.data", 17, lambda b: b.rsplit(b"\t", 1)[0])
    _edit_line(d / "u.data", 30, lambda b: _set_field(b, b"\t", 2, b"9"))
    _edit_line(d / "u.data", 31, lambda b: _set_field(b, b"\t", 1, b"x"))
    with caplog.at_level(logging.WARNING, logger="recsys_data"):
        ds = load_dataset(d, lenient=True)
    assert ds.skipped_rows == 3
    assert len(ds.interactions) == 800 - 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 3" in warnings[0].getMessage()
    assert "u.data:17" in warnings[0].getMessage()


def test_lenient_rows_match_the_clean_rows(small_sets: dict[str, Path], tmp_path: Path) -> None:
    clean = load_dataset(small_sets["latest"]).interactions
    d = _copy(small_sets["latest"], tmp_path / "d")
    _edit_line(d / "ratings.csv", 2, lambda b: b"garbage")  # first data row
    ds = load_dataset(d, lenient=True)
    assert ds.skipped_rows == 1
    np.testing.assert_array_equal(ds.interactions.user_ids, clean.user_ids[1:])
    np.testing.assert_array_equal(ds.interactions.ratings, clean.ratings[1:])


def test_crlf_and_missing_final_newline_are_fine(small_sets: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(small_sets["latest"], tmp_path / "d")
    data = (d / "ratings.csv").read_bytes().rstrip(b"\n").replace(b"\n", b"\r\n")
    (d / "ratings.csv").write_bytes(data)
    assert len(load_dataset(d).interactions) == 800


def test_missing_ratings_needs_metadata_only(small_sets: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(small_sets["1m"], tmp_path / "d")
    (d / "ratings.dat").unlink()
    with pytest.raises(DataFormatError, match=r"ratings\.dat: missing"):
        load_dataset(d)
    ds = load_dataset(d, metadata_only=True)
    assert len(ds.interactions) == 0 and len(ds.movies) == 60 and len(ds.users) == 40
    assert ds.summary()["ratings"] == 0


def test_files_in_one_subfolder_and_zip(small_sets: dict[str, Path], tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    _copy(small_sets["100k"], outer / "inner")
    assert len(load_dataset(outer).interactions) == 800
    z = tmp_path / "flat.zip"
    with zipfile.ZipFile(z, "w") as zf:  # files at the top level of the zip
        for f in (outer / "inner").iterdir():
            zf.write(f, f.name)
    assert load_dataset(z).name == "flat"


def test_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFound, match="no MovieLens files"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DatasetNotFound):
        load_dataset(tmp_path / "nope")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DatasetNotFound, match="recsys data fetch ml-25m"):
        load_dataset("ml-25m")


def test_find_by_name(small_sets: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _copy(small_sets["1m"], tmp_path / "data" / "ml-mine")  # ./data/<name>
    assert find_dataset("ml-mine") == tmp_path / "data" / "ml-mine"
    env = tmp_path / "env"
    _copy(small_sets["latest"], env / "ml-mine")  # $RECSYS_DATA_DIR wins over ./data
    monkeypatch.setenv("RECSYS_DATA_DIR", str(env))
    ds = load_dataset("ml-mine")
    assert ds.name == "ml-mine" and ds.format == "latest"


def test_ml_10m_layout_half_stars_without_users(small_sets: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(small_sets["1m"], tmp_path / "ml-10M100K")
    (d / "users.dat").unlink()
    lines = (d / "ratings.dat").read_bytes().rstrip(b"\n").split(b"\n")
    lines[0] = _set_field(lines[0], b"::", 2, b"3.5")
    (d / "ratings.dat").write_bytes(b"\n".join(lines) + b"\n")
    ds = load_dataset(d)
    assert ds.users == [] and ds.interactions.ratings[0] == 3.5
    # with users.dat (ml-1m) half stars are off the scale
    with_users = _copy(small_sets["1m"], tmp_path / "ml-1m")
    (with_users / "ratings.dat").write_bytes((d / "ratings.dat").read_bytes())
    with pytest.raises(DataFormatError, match=r"ratings\.dat line 1: rating '3\.5'"):
        load_dataset(with_users)


def test_float_ids_rejected_in_csv(small_sets: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(small_sets["latest"], tmp_path / "d")
    _edit_line(d / "ratings.csv", 5, lambda b: _set_field(b, b",", 1, b"1.0"))
    with pytest.raises(DataFormatError, match=r"ratings\.csv line 5: movie id '1\.0'"):
        load_dataset(d)
