"""A data set minus its leave-last-out TEST events, written in the source's own format.

``write_holdout("ml-100k", Path("out/ml-100k-holdout"))`` writes a folder that
``load_dataset`` reads back as the same format (ml-100k ``u.data``, ml-1m/10m ``ratings.dat``,
ml-latest family ``ratings.csv``) whose ratings are the source's minus every user's TEST event
(:func:`recsys_data.split.leave_last_out`: per user, events sorted by (timestamp, movie id),
the last is TEST; users with fewer than 3 events keep all theirs). The ratings file is filtered
line by line (the kept lines are the source's bytes, untouched); every other file of the data set
is copied unchanged. A marker, ``recsys-holdout.json``, records where it came from::

    {"kind": "recsys-holdout", "version": 1, "protocol": "...",
     "source_name": "ml-100k", "source_path": "...", "source_format": "100k",
     "source_sha256": "<zip sha256 or null>", "source_content_sha256": "<content_sha256(source)>",
     "source_events": 100000, "removed_events": 943, "kept_events": 99057,
     "content_sha256": "<content_sha256(holdout)>", "ratings_file": "u.data"}

``load_dataset(folder).holdout_of`` (or :func:`read_holdout_marker`) returns that dict, so a
model trained on the holdout can be checked against its source's TEST events.

:func:`content_sha256` is the data set's content checksum, the same bytes as
``recsys_embedder.training.data.Prepared.content_sha256`` (without torch or a ``Prepared``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys_data.model import HOLDOUT_MARKER, Interactions
from recsys_data.readers import _RATINGS_FILE, _body, _Source, read_marker
from recsys_data.split import MIN_EVENTS, leave_last_out

MARKER_KIND = "recsys-holdout"
MARKER_VERSION = 1
PROTOCOL = (
    "leave-last-out: per user, events sorted by (timestamp, movie id); the last one is TEST and is "
    "removed here (the one before it is VALIDATION and the rest TRAIN, both kept); users with fewer "
    f"than {MIN_EVENTS} events keep all of theirs. Kept rating lines are the source's bytes, other "
    "files are copied unchanged."
)


class HoldoutError(ValueError):
    """The holdout cannot be written (output folder in the way, source not clean, ...)."""


def _content_sha256(movie_ids: np.ndarray, inter: Interactions) -> str:
    h = hashlib.sha256()
    uid = np.asarray(inter.user_ids, dtype=np.int64)
    mid = np.asarray(inter.movie_ids, dtype=np.int64)
    ts = np.asarray(inter.timestamps, dtype=np.int64)
    order = np.lexsort((mid, ts, uid))
    rat = np.asarray(inter.ratings, dtype=np.float32)[order]
    for a in (np.sort(np.asarray(movie_ids, dtype=np.int64)), uid[order], mid[order], rat, ts[order]):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def content_sha256(dataset: Any) -> str:
    """sha256 of a data set's content, independent of file layout and row order: the catalog's
    movie ids (sorted, int64), then, per event sorted by (user, timestamp, movie id), the user ids
    (int64), movie ids (int64), ratings (float32) and timestamps (int64), each as one array.

    Equal to ``Prepared.content_sha256()`` of ``prepare(dataset)`` (tested)."""
    movie_ids = np.array([m.movie_id for m in dataset.movies], dtype=np.int64)
    return _content_sha256(movie_ids, dataset.interactions)


def read_holdout_marker(source: str | Path) -> dict[str, Any] | None:
    """The marker of a holdout folder or zip (see the module doc), or None for any other data
    set. Reads only the marker, not the ratings."""
    src = _Source(Path(source))
    try:
        return read_marker(src)
    finally:
        src.close()


@dataclass(frozen=True)
class Holdout:
    path: Path  # the output folder
    marker: dict[str, Any]
    files: list[str]  # file names written, the ratings file and the marker included


def _line_starts(raw: bytes) -> np.ndarray:
    """Byte offset where each line of ``raw`` starts, plus ``len(raw)`` at the end."""
    nl = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 0x0A)
    starts = np.concatenate(([0], nl + 1))
    if starts[-1] == len(raw):  # raw ends with a newline: no line starts there
        starts = starts[:-1]
    return np.concatenate((starts, [len(raw)])).astype(np.int64)


def _check_out(out: Path, source_path: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise HoldoutError(f"{out}: exists and is not a folder")
    src, dst = source_path.resolve(), out.resolve()
    if dst == src or dst in src.parents or src in dst.parents:
        raise HoldoutError(
            f"{out}: is (or is inside, or holds) the source {source_path}; pick another folder"
        )
    if out.is_dir() and any(out.iterdir()) and not force:
        raise HoldoutError(f"{out}: folder is not empty (use --force / force=True to replace it)")


def write_holdout(source: str | Path, out: Path, *, force: bool = False, verify: bool = True) -> Holdout:
    """Write ``source`` (a name, folder or zip, as ``load_dataset`` takes) minus its TEST events
    into the folder ``out`` (see the module doc). A non-empty ``out`` is refused unless ``force``
    (then it is replaced). The folder is written beside ``out`` and renamed into place, so a
    failure leaves no half-written data set. With ``verify`` the result is read back and its
    content checked against the source minus TEST. Raises DatasetNotFound for an unknown source,
    DataFormatError for a malformed one (strict), HoldoutError for the output folder."""
    from recsys_data import load_dataset  # the package imports this module's names

    out = Path(out)
    ds = load_dataset(source)
    source_path = Path(ds.source)
    _check_out(out, source_path, force)
    inter = ds.interactions
    _, _, test = leave_last_out(inter)
    ratings_file = _RATINGS_FILE[ds.format]
    header_lines = 1 if ds.format == "latest" else 0

    src = _Source(source_path)
    tmp = out.parent / f".{out.name}.holdout-tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        raw = src.read(ratings_file)
        body = _body(raw)
        n_data = (body.count(b"\n") + 1 if body else 0) - header_lines
        if n_data != len(inter):
            raise HoldoutError(f"{ratings_file}: {n_data} lines but {len(inter)} ratings read; cannot filter")
        starts = _line_starts(raw)
        # the reader's row k is the file's line k + header_lines (strict: no row is skipped)
        removed = np.flatnonzero(test) + header_lines
        with (tmp / ratings_file).open("wb") as f:
            prev = 0
            for line in removed.tolist():
                f.write(raw[prev : starts[line]])
                prev = int(starts[line + 1])
            f.write(raw[prev:])
        del raw, body
        written = [ratings_file]
        for name in src.names():
            if name in (ratings_file, HOLDOUT_MARKER):
                continue
            src.copy(name, tmp / name)
            written.append(name)
        movie_ids = np.array([m.movie_id for m in ds.movies], dtype=np.int64)
        kept = inter.take(~test)
        marker: dict[str, Any] = {
            "kind": MARKER_KIND,
            "version": MARKER_VERSION,
            "protocol": PROTOCOL,
            "source_name": ds.name,
            "source_path": str(source_path),
            "source_format": ds.format,
            "source_sha256": ds.sha256,
            "source_content_sha256": _content_sha256(movie_ids, inter),
            "source_events": len(inter),
            "removed_events": int(test.sum()),
            "kept_events": len(kept),
            "content_sha256": _content_sha256(movie_ids, kept),
            "ratings_file": ratings_file,
        }
        (tmp / HOLDOUT_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        written.append(HOLDOUT_MARKER)
        if verify:
            back = load_dataset(tmp)
            if back.format != ds.format or content_sha256(back) != marker["content_sha256"]:
                raise HoldoutError(f"{out}: read back differs from the source minus TEST (a bug)")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        src.close()
    return Holdout(out, marker, written)
