"""Embedder logic: signals -> vectors. No grpc, no torch, no tritonclient here.

The loaded model (``backends.base.LoadedModel``) is swapped atomically on
reload: each call takes the current model once and uses it to the end, the
old model's micro-batcher drains and the old model closes when its last call
is done. A model that fails to load is refused and the old one keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from recsys_core.batching import Batcher, BatcherClosed, BatchFn, QueueFull
from recsys_core.demographics import age_bracket, normalise_occupation, occupation_candidates
from recsys_core.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from recsys_core.validation import RATING_MAX, RATING_MIN, check_genre_names, check_year, quote

from recsys_embedder.backends.base import USER_FORMS, LoadedModel, ModelMeta, NewMovie, QueryInput, pad_batch
from recsys_embedder.signals import effective_ratings, event_order

log = logging.getLogger(__name__)

PINSAGE, TWO_TOWER = "pinsage", "two_tower"
MAX_ITEMS = 1000
MAX_SIGNALS = 256
MAX_HISTORY = 10_000
MAX_NEIGHBOURS = 50
MAX_TITLE = 500
# Blend of a history vector with a demographic prior (see the README):
# alpha = BLEND_K / (BLEND_K + n_liked), prior = mean PinSage vector of the
# BLEND_TOP movies the two-tower model ranks first for the demographics.
BLEND_K = 3.0
BLEND_TOP = 20


@dataclass(frozen=True)
class _Blend:
    """How a query vector is blended with the demographic prior after the network (see _blend)."""

    alpha: float  # weight of the prior, BLEND_K / (BLEND_K + n_liked)
    prior: np.ndarray
    dislike: np.ndarray  # the dislike direction (zeros when none)


@dataclass(frozen=True)
class _Pending:
    """One signal of an EmbedQuery batch waiting for the network: its position in the request,
    the network's input, and its blend (None: the network's vector as it is)."""

    index: int
    query: QueryInput
    blend: _Blend | None


# ---- domain values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RatedMovie:
    movie_id: int
    rating: float = 0.0  # 0 = liked, no rating
    timestamp: float | None = None  # seconds since the epoch; None = placed by list order (signals.py)


@dataclass(frozen=True)
class Demographics:
    gender: str | None = None  # "F" | "M" | None
    age: int = 0  # years, 0 = not given
    occupation: str = ""  # code "0".."20" or a name, "" = not given

    @property
    def given(self) -> bool:
        return bool(self.gender or self.age or self.occupation)


@dataclass(frozen=True)
class HistoryColumns:
    """A history as parallel arrays (what the servicer builds from a request: no object per
    event; issue #15). ``timestamps[j]`` is meaningful only where ``timed[j]``."""

    movie_ids: np.ndarray  # int64
    ratings: np.ndarray  # float64, 0 = liked, no rating
    timestamps: np.ndarray  # float64 seconds since the epoch
    timed: np.ndarray  # bool: the event has a time (else placed by list order, signals.py)

    def __len__(self) -> int:
        return int(self.movie_ids.shape[0])

    @classmethod
    def of(cls, history: Sequence[RatedMovie]) -> HistoryColumns:
        n = len(history)
        return cls(
            np.fromiter((h.movie_id for h in history), np.int64, n),
            np.fromiter((h.rating for h in history), np.float64, n),
            np.fromiter((h.timestamp or 0.0 for h in history), np.float64, n),
            np.fromiter((h.timestamp is not None for h in history), bool, n),
        )


@dataclass(frozen=True)
class Signal:
    history: Sequence[RatedMovie] | HistoryColumns = ()
    disliked: Sequence[int] = ()
    demographics: Demographics | None = None
    form: str | None = None  # None = the model's default

    def columns(self) -> HistoryColumns:
        h = self.history
        return h if isinstance(h, HistoryColumns) else HistoryColumns.of(h)


@dataclass
class QueryResult:
    vector: np.ndarray  # float32 (D,), empty when nothing was known
    space: str  # PINSAGE | TWO_TOWER
    unknown_ids: list[int]
    form: str | None  # the history form used (None for two-tower vectors)


@dataclass
class ItemsResult:
    found_ids: list[int]
    vectors: np.ndarray
    missing_ids: list[int]
    version: str


@dataclass
class NewMovieResult:
    vector: np.ndarray
    unknown_ids: list[int]
    version: str


@dataclass
class Info:
    meta: ModelMeta
    backend: str
    movie_count: int
    two_tower_dimension: int


class ModelLoader(Protocol):
    """Builds models (``backends.loader``); a fake in unit tests."""

    async def load(self, version: str) -> LoadedModel:
        """Load and warm up ``version`` ("" = latest). Raises NotFound / FailedPrecondition."""
        ...

    def latest_version(self) -> str | None:
        """The version ``load("")`` would load now, or None when it cannot tell."""
        ...


# ---- the model slot (atomic swap, drain) -----------------------------------------------------


class _Slot:
    def __init__(self, model: LoadedModel, batcher: Batcher[None, QueryInput, np.ndarray]) -> None:
        self.model = model
        self.batcher = batcher
        self.users = 0
        self.retired = False
        self.idle = asyncio.Event()
        order = np.argsort(model.movie_ids, kind="stable")
        self.sorted_ids = model.movie_ids[order]
        self.sorted_rows = order.astype(np.int64)
        self.tt_rows: np.ndarray | None = None
        if model.two_tower is not None:
            # PinSage rows of the two-tower movies (-1 where PinSage does not know one)
            self.tt_rows = self.rows(model.two_tower.movie_ids)

    def rows(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Item rows of ``ids`` (-1 where unknown)."""
        a = np.asarray(ids, dtype=np.int64)
        if len(self.sorted_ids) == 0 or a.size == 0:
            return np.full(a.shape, -1, np.int64)
        pos = np.minimum(np.searchsorted(self.sorted_ids, a), len(self.sorted_ids) - 1)
        return np.where(self.sorted_ids[pos] == a, self.sorted_rows[pos], -1)

    async def retire(self) -> None:
        self.retired = True
        if self.users == 0:
            self.idle.set()
        await self.idle.wait()
        await self.batcher.aclose()
        await self.model.close()


class EmbedderService:
    def __init__(
        self,
        loader: ModelLoader,
        *,
        batch_max_size: int = 64,
        batch_max_wait_ms: float = 0.0,
        batch_max_queue: int = 4096,
        batch_max_concurrency: int = 1,
        max_history: int = 2000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._loader = loader
        self._batch = (batch_max_size, batch_max_wait_ms, batch_max_queue, batch_max_concurrency)
        self._max_history = max_history
        self._clock = clock
        self._slot: _Slot | None = None
        self._reload_lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._pinned_version = ""
        self._closed = False
        self.on_change: list[Callable[[Info], Awaitable[None] | None]] = []

    # ---- lifecycle ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._slot is not None

    async def load(self, version: str = "") -> Info:
        """Load ``version`` ("" = latest) and switch to it atomically (the ``Reload`` RPC).

        The old model keeps serving until the new one is loaded and warmed up,
        and keeps serving if loading fails (NotFound / FailedPrecondition).
        """
        async with self._reload_lock:
            if self._closed:
                raise FailedPrecondition("the embedder is shutting down")
            model = await self._loader.load(version)
            size, wait, queue, conc = self._batch
            batcher = new_batcher(functools.partial(_run_batch, model), size, wait, queue, conc)
            old, self._slot = self._slot, _Slot(model, batcher)
            self._pinned_version = version
            if old is not None:
                task = asyncio.get_running_loop().create_task(old.retire())
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
            info = self.info()
            log.info(
                "model %s loaded (backend %s, %d movies, dim %d)",
                info.meta.version,
                info.backend,
                info.movie_count,
                info.meta.dimension,
            )
        for cb in self.on_change:
            res = cb(info)
            if asyncio.iscoroutine(res):
                await res
        return info

    async def reload_if_changed(self) -> bool:
        """File watch: load the latest version if it differs from the loaded one (only when no
        version was pinned). A broken new version is logged and skipped."""
        if self._pinned_version or self._slot is None or self._closed:
            return False
        latest = self._loader.latest_version()
        if latest is None or latest == self._slot.model.meta.version:
            return False
        try:
            await self.load("")
        except (NotFound, FailedPrecondition) as exc:
            log.warning("file watch: version %s refused, keeping %s: %s", latest, self.version, exc)
            return False
        return True

    async def watch(self, interval_s: float) -> None:
        """Poll the artifact directory every ``interval_s`` seconds (run as a task; cancel to stop)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.reload_if_changed()
            except Exception:
                log.exception("file watch failed")

    async def close(self) -> None:
        self._closed = True
        async with self._reload_lock:
            slot, self._slot = self._slot, None
        if slot is not None:
            await slot.retire()
        if self._retiring:
            await asyncio.gather(*list(self._retiring), return_exceptions=True)

    @property
    def version(self) -> str:
        return self._slot.model.meta.version if self._slot is not None else ""

    @contextlib.asynccontextmanager
    async def _use(self) -> AsyncIterator[_Slot]:
        slot = self._slot
        if slot is None:
            raise FailedPrecondition("no model loaded yet")
        slot.users += 1
        try:
            yield slot
        finally:
            slot.users -= 1
            if slot.retired and slot.users == 0:
                slot.idle.set()

    def info(self) -> Info:
        slot = self._slot
        if slot is None:
            raise FailedPrecondition("no model loaded yet")
        m = slot.model
        return Info(
            meta=m.meta,
            backend=m.backend.name,
            movie_count=len(m.movie_ids),
            two_tower_dimension=m.two_tower.dimension if m.two_tower is not None else 0,
        )

    # ---- EmbedItems --------------------------------------------------------------------------

    async def embed_items(self, movie_ids: Sequence[int], space: str = PINSAGE) -> ItemsResult:
        if not 1 <= len(movie_ids) <= MAX_ITEMS:
            raise InvalidArgument(f"movie_ids: 1..{MAX_ITEMS} ids, got {len(movie_ids)}", field="movie_ids")
        _check_ids(movie_ids, "movie_ids")
        async with self._use() as slot:
            m = slot.model
            ids = np.asarray(movie_ids, dtype=np.int64)
            if space == TWO_TOWER:
                if m.two_tower is None:
                    raise FailedPrecondition(f"model {m.meta.version} has no two-tower space")
                tt = m.two_tower
                pos = np.minimum(np.searchsorted(tt.movie_ids, ids), len(tt.movie_ids) - 1)
                rows = np.where(tt.movie_ids[pos] == ids, pos, -1)
                table = tt.item_vectors
            else:
                rows = slot.rows(ids)
                table = m.item_vectors
            found = rows >= 0
            return ItemsResult(
                found_ids=[int(x) for x in ids[found]],
                vectors=table[rows[found]],
                missing_ids=[int(x) for x in ids[~found]],
                version=m.meta.version,
            )

    # ---- EmbedQuery --------------------------------------------------------------------------

    async def embed_query(self, signals: Sequence[Signal]) -> tuple[list[QueryResult], str]:
        if not 1 <= len(signals) <= MAX_SIGNALS:
            raise InvalidArgument(f"signals: 1..{MAX_SIGNALS} signals, got {len(signals)}", field="signals")
        for k, s in enumerate(signals):
            self._validate_signal(k, s)
        async with self._use() as slot:
            m = slot.model
            default_form = m.meta.default_form if m.meta.default_form in USER_FORMS else "pinsage"
            results: list[QueryResult | None] = [None] * len(signals)
            pending: list[_Pending] = []
            for k, s in enumerate(signals):
                form = s.form or default_form
                q, unknown, n_liked = self._resolve(slot, s, form)
                demo_vec = self._demographic_vector(slot, s.demographics)
                if q is None:  # nothing the PinSage model knows
                    if demo_vec is not None:
                        results[k] = QueryResult(demo_vec, TWO_TOWER, unknown, None)
                    else:
                        results[k] = QueryResult(np.zeros(0, np.float32), PINSAGE, unknown, form)
                    continue
                if demo_vec is not None:
                    # blend: the network without dislikes, then prior + dislikes here
                    prior = self._demographic_prior(slot, demo_vec)
                    alpha = BLEND_K / (BLEND_K + n_liked)
                    blend_q = QueryInput(q.history, q.ratings, np.zeros(0, np.int64), q.form)
                    pending.append(_Pending(k, blend_q, _Blend(alpha, prior, _dislike_dir(m, q.dislikes))))
                else:
                    pending.append(_Pending(k, q, None))
                results[k] = QueryResult(np.zeros(0, np.float32), PINSAGE, unknown, form)
            if pending:
                try:
                    vectors = await slot.batcher.submit_many(None, [p.query for p in pending])
                except QueueFull as exc:
                    raise ResourceExhausted(f"embedder busy: {exc}") from exc
                except BatcherClosed as exc:  # cannot happen for a slot in use; be safe
                    raise FailedPrecondition("the model is being unloaded") from exc
                for p, vec in zip(pending, vectors, strict=True):
                    if p.blend is not None:
                        vec = _blend(vec, p.query, p.blend.alpha, p.blend.prior, p.blend.dislike, m.meta)
                    r = results[p.index]
                    assert r is not None
                    r.vector = vec.astype(np.float32, copy=False)
            return [r for r in results if r is not None], m.meta.version

    def _validate_signal(self, k: int, s: Signal) -> None:
        where = f"signals[{k}]"
        demo_given = s.demographics is not None and s.demographics.given
        if not s.history and not s.disliked and not demo_given:
            raise InvalidArgument(
                f"{where}: empty signal (no history, no disliked movies, no demographics)", field=where
            )
        if len(s.history) > MAX_HISTORY:
            raise InvalidArgument(f"{where}.history: at most {MAX_HISTORY} movies", field=f"{where}.history")
        if len(s.disliked) > MAX_HISTORY:
            raise InvalidArgument(
                f"{where}.disliked_movie_ids: at most {MAX_HISTORY} movies",
                field=f"{where}.disliked_movie_ids",
            )
        cols = s.columns()
        # Checked as arrays (one event at a time cost more than the network on long histories);
        # the first bad event of each kind is named.
        r = cols.ratings
        bad_id = np.flatnonzero(cols.movie_ids <= 0)
        bad_rating = np.flatnonzero(~np.isfinite(r) | ((r != 0) & ((r < RATING_MIN) | (r > RATING_MAX))))
        bad_time = np.flatnonzero(cols.timed & ~np.isfinite(cols.timestamps))
        firsts = [int(b[0]) for b in (bad_id, bad_rating, bad_time) if b.size]
        if firsts:
            j = min(firsts)
            f = f"{where}.history[{j}]"
            if cols.movie_ids[j] <= 0:
                mid = int(cols.movie_ids[j])
                raise InvalidArgument(f"{f}.movie_id: must be > 0, got {mid}", field=f"{f}.movie_id")
            if bad_rating.size and bad_rating[0] == j:
                raise InvalidArgument(f"{f}.rating: 0 or 0.5..5.0, got {float(r[j])}", field=f"{f}.rating")
            raise InvalidArgument(f"{f}.rated_at: invalid", field=f"{f}.rated_at")
        _check_ids(s.disliked, f"{where}.disliked_movie_ids")
        if s.form is not None and s.form not in USER_FORMS:
            raise InvalidArgument(f"{where}.form: unknown form {quote(s.form)}", field=f"{where}.form")
        if s.demographics is not None:
            d = s.demographics
            if not 0 <= d.age <= 120:
                raise InvalidArgument(
                    f"{where}.demographics.age: 1..120 or 0, got {d.age}", field=f"{where}.demographics.age"
                )
            if d.gender not in (None, "F", "M"):
                raise InvalidArgument(
                    f"{where}.demographics.gender: invalid", field=f"{where}.demographics.gender"
                )
            if d.occupation and normalise_occupation(d.occupation) is None:
                raise InvalidArgument(
                    f"{where}.demographics.occupation: unknown occupation {quote(d.occupation)} "
                    "(a code 0..20 or a name from docs/occupations.md)",
                    field=f"{where}.demographics.occupation",
                )

    def _resolve(self, slot: _Slot, s: Signal, form: str) -> tuple[QueryInput | None, list[int], int]:
        """History/dislikes -> item rows, in event order, low ratings by the model's rule
        (``signals.py``). None when nothing is known."""
        cols = s.columns()
        ratings = effective_ratings(cols.ratings)
        keep_h, to_dislike = slot.model.meta.history_rule.split(ratings)
        ids = cols.movie_ids
        rows_all = slot.rows(ids)
        caller_drows = slot.rows(s.disliked)
        # As arrays: for a 1,000-event history 6 µs instead of 137 µs element by element (issue #15).
        unknown = np.asarray(ids, np.int64)[rows_all < 0].tolist()
        unknown += np.asarray(s.disliked, np.int64).reshape(-1)[caller_drows < 0].tolist()
        drows = np.concatenate([caller_drows, rows_all[to_dislike]])
        order = event_order(rows_all, cols.timestamps, cols.timed)
        use = order[(keep_h & (rows_all >= 0))[order]]
        rows, rat = rows_all[use], ratings[use]
        drows = drows[drows >= 0]
        if len(rows) == 0 and len(drows) == 0:
            return None, unknown, 0
        rows, rat = rows[-self._max_history :], rat[-self._max_history :]
        q = QueryInput(rows.astype(np.int64), rat, drows.astype(np.int64), USER_FORMS.index(form))
        return q, unknown, len(rows)

    def _demographic_vector(self, slot: _Slot, d: Demographics | None) -> np.ndarray | None:
        if d is None or not d.given:
            return None
        tt = slot.model.two_tower
        if tt is None:
            return None
        g = {"F": 1, "M": 2}.get(d.gender or "", 0)
        a = age_bracket(d.age)
        o = occupation_index(d.occupation, tt.occupations)
        return np.asarray(tt.user_table[g, a, o], dtype=np.float32)

    def _demographic_prior(self, slot: _Slot, demo_vec: np.ndarray) -> np.ndarray:
        """Mean PinSage vector of the movies the two-tower model ranks first for these demographics."""
        tt = slot.model.two_tower
        assert tt is not None and slot.tt_rows is not None
        scores = tt.item_vectors @ demo_vec
        scores = np.where(slot.tt_rows >= 0, scores, -np.inf)
        k = min(BLEND_TOP, int((slot.tt_rows >= 0).sum()))
        if k == 0:
            return np.zeros(slot.model.item_vectors.shape[1], np.float32)
        top = np.argpartition(-scores, k - 1)[:k]
        return _normalise(slot.model.item_vectors[slot.tt_rows[top]].mean(0))

    # ---- EmbedNewMovie -----------------------------------------------------------------------

    async def embed_new_movie(
        self, title: str, year: int, genres: Sequence[str], neighbour_ids: Sequence[int]
    ) -> NewMovieResult:
        if not 1 <= len(title) <= MAX_TITLE or not title.strip():
            raise InvalidArgument(f"features.title: 1..{MAX_TITLE} characters", field="features.title")
        check_year(year, "features.year")
        genres = check_genre_names(genres, "features.genres")
        if len(neighbour_ids) > MAX_NEIGHBOURS:
            raise InvalidArgument(
                f"neighbour_movie_ids: at most {MAX_NEIGHBOURS}, got {len(neighbour_ids)}",
                field="neighbour_movie_ids",
            )
        _check_ids(neighbour_ids, "neighbour_movie_ids")
        async with self._use() as slot:
            m = slot.model
            rows = slot.rows(neighbour_ids)
            unknown = [int(i) for i, r in zip(neighbour_ids, rows, strict=True) if r < 0]
            movie = NewMovie(title, year or None, tuple(genres), rows[rows >= 0])
            vec = (await m.embed_new_movies([movie]))[0]
            return NewMovieResult(np.asarray(vec, np.float32), unknown, m.meta.version)


# ---- helpers ---------------------------------------------------------------------------------


def new_batcher(
    run: BatchFn[None, QueryInput, np.ndarray],
    max_size: int,
    max_wait_ms: float,
    max_queue: int,
    max_concurrency: int,
) -> Batcher[None, QueryInput, np.ndarray]:
    """The micro-batcher of one model: signals of concurrent calls (those the server started in the
    same event-loop step together) form one forward pass of at most ``max_size``; while
    ``max_concurrency`` passes run, later signals queue and form the next one as soon as a pass
    ends, so batches grow with the load. ``max_wait_ms`` > 0 also holds a batch open that long
    after its first signal (unless it is full). More than ``max_queue`` signals waiting:
    QueueFull."""
    return Batcher(
        run,
        max_items=max_size,
        max_in_flight=max_concurrency,
        max_wait_s=max_wait_ms / 1000.0,
        defer_send=True,
        keep_cancelled=True,
        max_queue=max_queue,
    )


async def _run_batch(
    model: LoadedModel, key: None, items: list[QueryInput], deadlines: list[float | None]
) -> list[np.ndarray]:
    """One forward pass of the query network for a micro-batch; one vector per item."""
    out = await model.backend.embed_queries(pad_batch(items))
    return [np.asarray(out[k], dtype=np.float32) for k in range(len(items))]


def _check_ids(ids: Sequence[int], name: str) -> None:
    for j, i in enumerate(ids):
        if i <= 0:
            raise InvalidArgument(f"{name}[{j}]: ids must be > 0, got {i}", field=f"{name}[{j}]")


def _normalise(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n if n > 0 else v).astype(np.float32)


def _dislike_dir(m: LoadedModel, drows: np.ndarray) -> np.ndarray:
    if len(drows) == 0:
        return np.zeros(m.item_vectors.shape[1], np.float32)
    return _normalise(m.item_vectors[drows].mean(0))


def _blend(
    vec: np.ndarray, q: QueryInput, alpha: float, prior: np.ndarray, dislike: np.ndarray, meta: ModelMeta
) -> np.ndarray:
    """``normalise(normalise((1-α)·u + α·prior) - w·dislike)`` (dislike = 0 when none)."""
    u = _normalise((1.0 - alpha) * np.asarray(vec, np.float32) + alpha * prior)
    return _normalise(u - meta.dislike_weight * dislike)


def occupation_index(value: str, vocabulary: Sequence[str]) -> int:
    """Index (1-based, 0 = unknown) of an occupation in a model's vocabulary, mapping between the
    ml-100k and ml-1m vocabularies where the name is not in it (docs/occupations.md)."""
    name = normalise_occupation(value) if value else None
    if name is None:
        return 0
    vocab = list(vocabulary)
    for c in occupation_candidates(name):
        if c in vocab:
            return vocab.index(c) + 1
    return 0
