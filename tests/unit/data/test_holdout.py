"""``recsys data holdout`` / write_holdout: the source minus its leave-last-out TEST events."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from recsys_data import (
    HOLDOUT_MARKER,
    HoldoutError,
    content_sha256,
    leave_last_out,
    load_dataset,
    read_holdout_marker,
    write_holdout,
)
from recsys_data.synthetic import generate
from recsys_tools.cli import main

RATINGS = {"100k": "u.data", "1m": "ratings.dat", "latest": "ratings.csv"}


def _events(inter) -> set[tuple[int, int, float, int]]:  # type: ignore[no-untyped-def]
    return set(
        zip(
            inter.user_ids.tolist(),
            inter.movie_ids.tolist(),
            inter.ratings.tolist(),
            inter.timestamps.tolist(),
            strict=True,
        )
    )


@pytest.mark.parametrize("fmt", ["100k", "1m", "latest"])
def test_removes_exactly_test_events(fmt: str, small_sets: dict[str, Path], tmp_path: Path) -> None:
    src_path = small_sets[fmt]
    src = load_dataset(src_path)
    out = tmp_path / "holdout"
    result = write_holdout(src_path, out)
    back = load_dataset(out)
    assert back.format == src.format and back.holdout_of == result.marker

    _, _, test = leave_last_out(src.interactions)
    assert 0 < test.sum() < len(src.interactions)
    assert _events(back.interactions) == _events(src.interactions.take(~test))
    assert len(back.interactions) == len(src.interactions) - int(test.sum())
    assert back.movies == src.movies and back.users == src.users and back.genres == src.genres

    # kept lines are the source's lines, in order; the others are copied byte for byte
    name = RATINGS[fmt]
    src_lines = (src_path / name).read_bytes().split(b"\n")
    out_lines = (out / name).read_bytes().split(b"\n")
    header = 1 if fmt == "latest" else 0
    removed = {int(k) + header for k in np.flatnonzero(test)}
    assert out_lines == [line for k, line in enumerate(src_lines) if k not in removed]
    for f in src_path.iterdir():
        if f.name != name:
            assert (out / f.name).read_bytes() == f.read_bytes(), f.name
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*(p.name for p in src_path.iterdir()), HOLDOUT_MARKER]
    )

    marker = json.loads((out / HOLDOUT_MARKER).read_text())
    assert marker == read_holdout_marker(out) == result.marker
    assert marker["kind"] == "recsys-holdout" and marker["version"] == 1
    assert marker["source_name"] == src_path.name and marker["source_format"] == fmt
    assert marker["source_content_sha256"] == content_sha256(src)
    assert marker["content_sha256"] == content_sha256(back)
    assert marker["removed_events"] == int(test.sum()) and marker["ratings_file"] == name
    assert (
        marker["kept_events"] + marker["removed_events"] == marker["source_events"] == len(src.interactions)
    )
    assert "leave-last-out" in marker["protocol"]
    assert load_dataset(src_path).holdout_of is None and read_holdout_marker(src_path) is None


def test_content_sha256_matches_prepared(small_sets: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from recsys_embedder.training.data import prepare

    for fmt in ("100k", "latest"):
        ds = load_dataset(small_sets[fmt])
        assert content_sha256(ds) == prepare(ds).content_sha256()
        write_holdout(small_sets[fmt], tmp_path / fmt)
        back = load_dataset(tmp_path / fmt)
        assert content_sha256(back) == prepare(back).content_sha256() == back.holdout_of["content_sha256"]  # type: ignore[index]
    # row order does not matter; a changed rating does
    ds = load_dataset(small_sets["100k"])
    perm = np.random.default_rng(0).permutation(len(ds.interactions))
    shuffled = type(ds)(**{**ds.__dict__, "interactions": ds.interactions.take(perm)})
    assert content_sha256(shuffled) == content_sha256(ds)
    r = ds.interactions.ratings.copy()
    r[0] = 6 - r[0] if r[0] != 3 else 4
    changed = type(ds.interactions)(
        ds.interactions.user_ids, ds.interactions.movie_ids, r, ds.interactions.timestamps
    )
    assert content_sha256(type(ds)(**{**ds.__dict__, "interactions": changed})) != content_sha256(ds)


def _latest(folder: Path, ratings: bytes) -> Path:
    folder.mkdir()
    (folder / "movies.csv").write_bytes(
        b"movieId,title,genres\n1,A (2000),Drama\n2,B (2001),Comedy\n3,C (2002),Drama\n"
    )
    (folder / "ratings.csv").write_bytes(ratings)
    return folder


def test_ties_crlf_and_original_bytes(tmp_path: Path) -> None:
    # user 1: t=30 tie broken by movie id (movie 3 is TEST); "5.00" / "2" stay as written;
    # user 2 has 2 events (keeps both); CRLF endings and no final newline are preserved
    ratings = (
        b"userId,movieId,rating,timestamp\r\n1,3,4.0,30\r\n2,1,5.00,7\r\n1,1,3.5,10\r\n1,2,2,30\r\n2,2,1.5,8"
    )
    src = _latest(tmp_path / "src", ratings)
    result = write_holdout(src, tmp_path / "out")
    assert (tmp_path / "out" / "ratings.csv").read_bytes() == (
        b"userId,movieId,rating,timestamp\r\n2,1,5.00,7\r\n1,1,3.5,10\r\n1,2,2,30\r\n2,2,1.5,8"
    )
    assert result.marker["removed_events"] == 1
    # the last line removed: the file ends after the previous line's newline
    src2 = _latest(tmp_path / "src2", b"userId,movieId,rating,timestamp\n1,1,4,1\n1,2,4,2\n1,3,4,3\n")
    write_holdout(src2, tmp_path / "out2")
    assert (
        tmp_path / "out2" / "ratings.csv"
    ).read_bytes() == b"userId,movieId,rating,timestamp\n1,1,4,1\n1,2,4,2\n"


def test_from_zip_and_holdout_of_holdout(tmp_path: Path) -> None:
    z = generate(tmp_path / "ml-zipped", fmt="100k", n_users=15, n_movies=25, n_ratings=150, seed=3, zip=True)
    shutil.rmtree(tmp_path / "ml-zipped")
    result = write_holdout(z, tmp_path / "h1")
    assert result.marker["source_name"] == "ml-zipped" and result.marker["source_sha256"]
    with zipfile.ZipFile(z) as zf:
        for member in zf.namelist():
            if member.endswith("/") or member.endswith("u.data"):
                continue
            assert (tmp_path / "h1" / Path(member).name).read_bytes() == zf.read(member)
    # a holdout of a holdout: a new marker naming the first holdout as its source
    second = write_holdout(tmp_path / "h1", tmp_path / "h2")
    assert second.marker["source_name"] == "h1"
    assert second.marker["source_content_sha256"] == result.marker["content_sha256"]


def test_refusals(small_sets: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(HoldoutError, match="not empty"):
        write_holdout(small_sets["100k"], out)
    assert (out / "keep.txt").exists()
    write_holdout(small_sets["100k"], out, force=True)
    assert not (out / "keep.txt").exists() and load_dataset(out).holdout_of is not None
    copy = tmp_path / "copy"
    shutil.copytree(small_sets["100k"], copy)
    with pytest.raises(HoldoutError, match="source"):
        write_holdout(copy, copy, force=True)
    with pytest.raises(HoldoutError, match="source"):
        write_holdout(copy, tmp_path, force=True)
    assert (copy / "u.data").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cli(small_sets: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "h"
    assert main(["data", "holdout", str(small_sets["latest"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    marker = read_holdout_marker(out)
    assert marker is not None and f"{marker['removed_events']} TEST events removed" in printed
    assert "movies.csv" in printed and str(out) in printed
    assert main(["data", "holdout", str(small_sets["latest"]), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["data", "holdout", str(small_sets["latest"]), "--out", str(out), "--force"]) == 0
    capsys.readouterr()
    assert main(["data", "holdout", "ml-no-such-set", "--out", str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["data", "holdout", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
