"""The MovieLens data layer: one model for every format, strict readers, split, generator, fetch.

from recsys_data import load_dataset, leave_last_out
ds = load_dataset("ml-100k")          # a name, a zip or an extracted folder
train, valid, test = leave_last_out(ds.interactions)
write_holdout("ml-100k", Path("ml-100k-holdout"))  # minus TEST, same format; see data.holdout
"""

from __future__ import annotations

import os
from pathlib import Path

from recsys_data.fetch import ChecksumMismatch, UnverifiedDownload, fetch
from recsys_data.holdout import HoldoutError, content_sha256, read_holdout_marker, write_holdout
from recsys_data.model import (
    HOLDOUT_MARKER,
    DataFormatError,
    Dataset,
    DatasetNotFound,
    Interactions,
    Movie,
    User,
)
from recsys_data.readers import read_dataset, split_title
from recsys_data.registry import KNOWN, KnownDataset
from recsys_data.split import leave_last_out

__all__ = [
    "HOLDOUT_MARKER",
    "KNOWN",
    "ChecksumMismatch",
    "DataFormatError",
    "Dataset",
    "DatasetNotFound",
    "HoldoutError",
    "Interactions",
    "KnownDataset",
    "Movie",
    "UnverifiedDownload",
    "User",
    "content_sha256",
    "fetch",
    "find_dataset",
    "leave_last_out",
    "load_dataset",
    "read_holdout_marker",
    "search_dirs",
    "split_title",
    "write_holdout",
]

DATA_DIR_ENV = "RECSYS_DATA_DIR"
SHARED_DIR = Path("shared") / "data" / "movielens"


def search_dirs() -> list[Path]:
    """Where names are looked up, in order: $RECSYS_DATA_DIR, ./data, then the first
    ``shared/data/movielens`` found walking up from the current directory."""
    dirs: list[Path] = []
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        dirs.append(Path(env))
    cwd = Path.cwd()
    dirs.append(cwd / "data")
    for parent in (cwd, *cwd.parents):
        if (parent / SHARED_DIR).is_dir():
            dirs.append(parent / SHARED_DIR)
            break
    return dirs


def find_dataset(name: str) -> Path:
    """Resolve a data set NAME to ``<dir>/<name>`` (folder) or ``<dir>/<name>.zip`` in
    :func:`search_dirs` order; raise DatasetNotFound saying how to fetch it."""
    dirs = search_dirs()
    for d in dirs:
        for candidate in (d / name, d / f"{name}.zip"):
            if candidate.exists():
                return candidate
    looked = ", ".join(str(d) for d in dirs)
    hint = (
        f"fetch it with `recsys data fetch {name} --dest DIR` and set {DATA_DIR_ENV}=DIR (or use ./data)"
        if name in KNOWN
        else f"known names: {', '.join(KNOWN)}"
    )
    raise DatasetNotFound(f"data set {name!r} not found (looked in {looked}); {hint}")


def load_dataset(source: str | Path, *, lenient: bool = False, metadata_only: bool = False) -> Dataset:
    """Load a MovieLens data set from a zip, an extracted folder or a known NAME.

    The format (ml-100k, ml-1m/10m ``.dat``, ml-latest/20m/25m/32m ``.csv``) is detected from the
    files. Malformed rows raise DataFormatError (file and line) unless ``lenient`` (then they are
    skipped, counted in ``skipped_rows`` and logged in one warning). A data set without its
    ratings file (e.g. ml-1m-metadata-only) raises DataFormatError unless ``metadata_only``, which
    reads only movies and users and returns empty interactions.
    """
    path = Path(source)
    name: str | None = None
    if not path.exists():
        if isinstance(source, str) and os.sep not in source and "/" not in source:
            name = source
            path = find_dataset(source)
        else:
            raise DatasetNotFound(f"{source}: no such file or folder")
    return read_dataset(path, name=name, lenient=lenient, metadata_only=metadata_only)
