"""Bulk load of a MovieLens data set (any format ``recsys_data`` reads) into the catalog.

The rows are streamed through COPY into temporary tables and merged in ONE transaction (see
``PgStore.bulk_load``): re-running gives the same state and a failed load changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from recsys_data import Dataset, load_dataset

from recsys_catalog.model import LoadReport
from recsys_catalog.store import PgStore

log = logging.getLogger(__name__)

CHUNK = 50_000


def movie_rows(ds: Dataset) -> list[tuple[Any, ...]]:
    return [(m.movie_id, m.title, m.year, list(m.genres), m.imdb_id, m.tmdb_id) for m in ds.movies]


def user_rows(ds: Dataset) -> list[tuple[Any, ...]]:
    return [(u.user_id, u.gender, u.age, u.occupation, u.zip_code) for u in ds.users]


def rating_chunks(ds: Dataset, chunk: int = CHUNK) -> Iterator[list[tuple[int, int, float, int]]]:
    """(user_id, movie_id, rating, unix seconds) rows as Python values, ``chunk`` at a time."""
    inter = ds.interactions
    for start in range(0, len(inter), chunk):
        stop = start + chunk
        yield list(
            zip(
                inter.user_ids[start:stop].tolist(),
                inter.movie_ids[start:stop].tolist(),
                inter.ratings[start:stop].tolist(),
                inter.timestamps[start:stop].tolist(),
                strict=True,
            )
        )


async def load_into(
    store: PgStore,
    ds: Dataset,
    *,
    replace: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> LoadReport:
    """Load ``ds`` (merge, or ``replace`` everything) in one transaction."""
    return await store.bulk_load(
        name=ds.name,
        sha256=ds.sha256,
        movies=movie_rows(ds),
        users=user_rows(ds),
        ratings=rating_chunks(ds),
        replace=replace,
        progress=progress,
    )


async def load_source(
    store: PgStore,
    source: str | Path,
    *,
    lenient: bool = False,
    replace: bool = False,
    show_progress: bool = False,
) -> LoadReport:
    """Read a data set (name, zip or folder) and load it, with a progress bar if asked."""
    ds = load_dataset(source, lenient=lenient)
    if not show_progress:
        return await load_into(store, ds, replace=replace)
    from tqdm import tqdm

    with tqdm(total=len(ds.interactions), unit="rating", desc=f"loading {ds.name}") as bar:

        def progress(stage: str, n: int) -> None:
            if stage == "ratings":
                bar.update(n)
            elif stage == "merge":
                bar.set_postfix_str("merging")

        return await load_into(store, ds, replace=replace, progress=progress)
