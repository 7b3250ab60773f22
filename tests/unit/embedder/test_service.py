"""EmbedderService logic with a fake numpy model: validation, unknown ids, spaces, blend,
dislikes, atomic reload and the file watch. No torch, no grpc."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest
from recsys_core.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from recsys_embedder.backends.base import ModelMeta, NewMovie, QueryBatch, TwoTowerServing
from recsys_embedder.service import (
    PINSAGE,
    TWO_TOWER,
    Demographics,
    EmbedderService,
    RatedMovie,
    Signal,
    normalise_occupation,
    occupation_index,
)
from recsys_embedder.signals import HistoryRule

DIM = 8


def _norm(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n == 0, 1, n)


class FakeBackend:
    name = "fake"

    def __init__(self, items: np.ndarray, gate: asyncio.Event | None = None) -> None:
        self.items = items
        self.gate = gate
        self.batches: list[int] = []
        self.histories: list[list[int]] = []  # item rows per query, oldest -> newest
        self.closed = False

    async def embed_queries(self, batch: QueryBatch) -> np.ndarray:
        if self.gate is not None:
            await self.gate.wait()
        self.batches.append(len(batch))
        self.histories.extend([row[m > 0].tolist() for row, m in zip(batch.history, batch.mask, strict=True)])
        m = batch.mask[..., None]
        u = _norm((self.items[batch.history] * m).sum(1))
        dm = batch.dislike_mask[..., None]
        d = _norm((self.items[batch.dislikes] * dm).sum(1))
        return _norm(u - 0.5 * d * (batch.dislike_mask.sum(1, keepdims=True) > 0)).astype(np.float32)

    async def close(self) -> None:
        self.closed = True


class FakeModel:
    def __init__(
        self, version: str, seed: int = 0, gate: asyncio.Event | None = None, two_tower: bool = True
    ):
        rng = np.random.default_rng(seed)
        self.movie_ids = np.array([30, 10, 20, 40, 50, 60], np.int64)  # deliberately unsorted
        self.item_vectors = _norm(rng.normal(size=(6, DIM))).astype(np.float32)
        self.meta = ModelMeta(
            version=version, dimension=DIM, metrics={"test/hr@10": 0.2}, default_form="mean"
        )
        self.backend = FakeBackend(self.item_vectors, gate)
        self.genres = ("Drama",)
        self.two_tower = None
        if two_tower:
            tt_ids = np.array([10, 20, 30, 99], np.int64)
            self.two_tower = TwoTowerServing(
                dimension=4,
                movie_ids=tt_ids,
                item_vectors=_norm(rng.normal(size=(4, 4))).astype(np.float32),
                user_table=_norm(rng.normal(size=(3, 8, 3, 4))).astype(np.float32),
                occupations=("artist", "programmer"),
            )
        self.closed = False
        self.new_movies: list[NewMovie] = []

    async def embed_new_movies(self, movies: Sequence[NewMovie]) -> np.ndarray:
        self.new_movies.extend(movies)
        return np.ones((len(movies), DIM), np.float32) / np.sqrt(DIM)

    async def close(self) -> None:
        self.closed = True
        await self.backend.close()


class FakeLoader:
    def __init__(self) -> None:
        self.models: dict[str, FakeModel] = {}
        self.latest = "v1"
        self.loaded: list[FakeModel] = []
        self.fail: set[str] = set()

    async def load(self, version: str) -> FakeModel:
        v = version or self.latest
        if v in self.fail:
            raise FailedPrecondition(f"artifact refused: {v} is broken")
        if v not in self.models:
            if version:
                raise NotFound(f"artifact version {v!r} not found")
            self.models[v] = FakeModel(v, seed=len(self.models))
        m = self.models[v]
        self.loaded.append(m)
        return m

    def latest_version(self) -> str | None:
        return self.latest


@pytest.fixture
async def svc() -> EmbedderService:
    s = EmbedderService(FakeLoader(), batch_max_wait_ms=1.0, clock=lambda: 1_000_000.0)
    await s.load("")
    yield s  # type: ignore[misc]
    await s.close()


async def test_not_ready_before_load() -> None:
    s = EmbedderService(FakeLoader())
    assert not s.ready
    with pytest.raises(FailedPrecondition):
        await s.embed_items([10])
    with pytest.raises(FailedPrecondition):
        s.info()


async def test_embed_items_in_request_order_with_missing(svc: EmbedderService) -> None:
    res = await svc.embed_items([20, 7, 30, 20])
    assert res.found_ids == [20, 30, 20]
    assert res.missing_ids == [7]
    model = svc._slot.model  # type: ignore[union-attr]
    np.testing.assert_array_equal(res.vectors[0], model.item_vectors[2])
    np.testing.assert_array_equal(res.vectors[1], model.item_vectors[0])
    tt = await svc.embed_items([99, 40], TWO_TOWER)
    assert tt.found_ids == [99] and tt.missing_ids == [40] and tt.vectors.shape == (1, 4)
    assert res.version == "v1"


@pytest.mark.parametrize("ids", [[], list(range(1, 1002)), [0], [5, -1]])
async def test_embed_items_invalid(svc: EmbedderService, ids: list[int]) -> None:
    with pytest.raises(InvalidArgument):
        await svc.embed_items(ids)


async def test_history_query_uses_default_form_and_reports_unknown(svc: EmbedderService) -> None:
    hist = [RatedMovie(10, 5.0, 1.0), RatedMovie(777, 4.0, 2.0), RatedMovie(20, 0.0, None)]
    (r,), version = await svc.embed_query([Signal(history=hist)])
    assert version == "v1"
    assert r.space == PINSAGE and r.form == "mean" and r.unknown_ids == [777]
    model = svc._slot.model  # type: ignore[union-attr]
    want = _norm(model.item_vectors[1] + model.item_vectors[2])
    np.testing.assert_allclose(r.vector, want, atol=1e-6)


async def test_low_ratings_are_history_by_default(svc: EmbedderService) -> None:
    """The network was trained on every rating (it learned a weight per rating), so an artifact
    without a chosen rule serves a low rating as ordinary history, not as a dislike."""
    base = [RatedMovie(10, 5.0), RatedMovie(20, 4.0)]
    (low,), _ = await svc.embed_query([Signal(history=[*base, RatedMovie(40, 1.0)])])
    (as_hist,), _ = await svc.embed_query([Signal(history=[*base, RatedMovie(40, 5.0)])])
    np.testing.assert_allclose(low.vector, as_hist.vector, atol=1e-6)  # the fake ignores ratings


@pytest.mark.parametrize("mode", ["dislike", "ignore"])
async def test_low_rating_rule_from_the_model(svc: EmbedderService, mode: str) -> None:
    model = svc._slot.model  # type: ignore[union-attr]
    model.meta.history_rule = HistoryRule(mode, 2.5)
    base = [RatedMovie(10, 5.0), RatedMovie(20, 4.0)]
    (plain,), _ = await svc.embed_query([Signal(history=base)])
    (explicit,), _ = await svc.embed_query([Signal(history=base, disliked=[40])])
    (low,), _ = await svc.embed_query([Signal(history=[*base, RatedMovie(40, 2.0)])])
    (_at,), _ = await svc.embed_query([Signal(history=[*base, RatedMovie(40, 2.5)])])  # not below
    d = model.item_vectors[3]
    assert float(explicit.vector @ d) < float(plain.vector @ d) - 0.1
    np.testing.assert_allclose(low.vector, explicit.vector if mode == "dislike" else plain.vector, atol=1e-6)
    assert model.backend.histories[-1] == [1, 2, 3]  # rows of 10, 20, 40: 2.5 stays history


async def test_untimed_history_keeps_the_list_order_oldest_first(svc: EmbedderService) -> None:
    backend = svc._slot.model.backend  # type: ignore[union-attr]
    await svc.embed_query([Signal(history=[RatedMovie(40), RatedMovie(10), RatedMovie(30)])])
    assert backend.histories[-1] == [3, 1, 0]  # as given: the last element is the newest


async def test_timed_history_is_sorted_by_time_then_movie_id(svc: EmbedderService) -> None:
    backend = svc._slot.model.backend  # type: ignore[union-attr]
    hist = [RatedMovie(40, 4.0, 20.0), RatedMovie(30, 4.0, 10.0), RatedMovie(10, 4.0, 20.0)]
    await svc.embed_query([Signal(history=hist)])
    assert backend.histories[-1] == [0, 1, 3]  # 30 @10, then the tie at 20 by id: 10, 40
    # untimed entries are newer than every timed one, in list order
    await svc.embed_query([Signal(history=[RatedMovie(50), *hist, RatedMovie(20)])])
    assert backend.histories[-1] == [0, 1, 3, 4, 2]


async def test_all_unknown_is_an_empty_vector_not_an_error(svc: EmbedderService) -> None:
    (r,), _ = await svc.embed_query([Signal(history=[RatedMovie(777)], disliked=[888])])
    assert r.vector.size == 0 and r.unknown_ids == [777, 888] and r.space == PINSAGE


async def test_demographics_only_is_a_two_tower_vector(svc: EmbedderService) -> None:
    model = svc._slot.model  # type: ignore[union-attr]
    (r,), _ = await svc.embed_query([Signal(demographics=Demographics("F", 30, "Programmer"))])
    assert r.space == TWO_TOWER and r.form is None
    np.testing.assert_allclose(r.vector, model.two_tower.user_table[1, 3, 2])  # F, 25-34, programmer
    # unknown history + demographics -> the demographic vector, unknown ids listed
    (r2,), _ = await svc.embed_query([Signal(history=[RatedMovie(777)], demographics=Demographics(age=30))])
    assert r2.space == TWO_TOWER and r2.unknown_ids == [777]


async def test_history_and_demographics_blend_in_the_pinsage_space(svc: EmbedderService) -> None:
    hist = [RatedMovie(10, 5.0)]
    (alone,), _ = await svc.embed_query([Signal(history=hist)])
    (both,), _ = await svc.embed_query([Signal(history=hist, demographics=Demographics("M", 40, "artist"))])
    assert both.space == PINSAGE and both.vector.shape == (DIM,)
    assert abs(float(np.linalg.norm(both.vector)) - 1.0) < 1e-5
    assert not np.allclose(both.vector, alone.vector)
    many = [RatedMovie(i, 5.0, float(k)) for k, i in enumerate([10, 20, 30, 40, 50, 60] * 10)]
    (h,), _ = await svc.embed_query([Signal(history=many)])
    (hb,), _ = await svc.embed_query([Signal(history=many, demographics=Demographics("M", 40, "artist"))])
    # a long history dominates the demographic prior
    assert float(hb.vector @ h.vector) > float(both.vector @ alone.vector)


async def test_demographics_without_a_two_tower_model() -> None:
    loader = FakeLoader()
    loader.models["v1"] = FakeModel("v1", two_tower=False)
    s = EmbedderService(loader)
    await s.load("")
    (r,), _ = await s.embed_query([Signal(demographics=Demographics(age=20))])
    assert r.vector.size == 0
    with pytest.raises(FailedPrecondition):
        await s.embed_items([10], TWO_TOWER)
    await s.close()


@pytest.mark.parametrize(
    "signal, field",
    [
        (Signal(), "signals[0]"),
        (Signal(demographics=Demographics()), "signals[0]"),
        (Signal(history=[RatedMovie(0)]), "signals[0].history[0].movie_id"),
        (Signal(history=[RatedMovie(1, 7.0)]), "signals[0].history[0].rating"),
        (Signal(history=[RatedMovie(1, float("nan"))]), "signals[0].history[0].rating"),
        (Signal(history=[RatedMovie(1, 0.2)]), "signals[0].history[0].rating"),
        (Signal(disliked=[-3]), "signals[0].disliked_movie_ids[0]"),
        (Signal(history=[RatedMovie(1)], form="best"), "signals[0].form"),
        (Signal(demographics=Demographics(age=121)), "signals[0].demographics.age"),
        (Signal(demographics=Demographics(occupation="astronaut")), "signals[0].demographics.occupation"),
        (Signal(demographics=Demographics(occupation="21")), "signals[0].demographics.occupation"),
    ],
)
async def test_invalid_signals(svc: EmbedderService, signal: Signal, field: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        await svc.embed_query([signal])
    assert exc.value.field == field


async def test_signal_count_limits_and_index_in_message(svc: EmbedderService) -> None:
    with pytest.raises(InvalidArgument):
        await svc.embed_query([])
    with pytest.raises(InvalidArgument):
        await svc.embed_query([Signal(history=[RatedMovie(10)])] * 257)
    with pytest.raises(InvalidArgument, match=r"signals\[1\]"):
        await svc.embed_query([Signal(history=[RatedMovie(10)]), Signal()])


async def test_concurrent_queries_are_batched_and_each_gets_its_own(svc: EmbedderService) -> None:
    ids = [10, 20, 30, 40, 50, 60]
    calls = [svc.embed_query([Signal(history=[RatedMovie(ids[k % 6])], form="latest")]) for k in range(60)]
    results = await asyncio.gather(*calls)
    model = svc._slot.model  # type: ignore[union-attr]
    rows = {int(m): r for r, m in enumerate(model.movie_ids)}
    for k, ((r,), _) in enumerate(results):
        np.testing.assert_allclose(r.vector, model.item_vectors[rows[ids[k % 6]]], atol=1e-6)
    assert max(model.backend.batches) > 1


async def test_new_movie(svc: EmbedderService) -> None:
    res = await svc.embed_new_movie("New One", 2020, ["Drama"], [10, 555])
    assert res.unknown_ids == [555] and res.vector.shape == (DIM,)
    model = svc._slot.model  # type: ignore[union-attr]
    assert model.new_movies[-1].neighbour_rows.tolist() == [1]
    for args in (
        ("", 2020, [], []),
        ("x" * 501, 0, [], []),
        ("ok", 1200, [], []),
        ("ok", 0, [], list(range(1, 52))),
    ):
        with pytest.raises(InvalidArgument):
            await svc.embed_new_movie(*args)  # type: ignore[arg-type]


async def test_reload_is_atomic_and_in_flight_calls_finish_on_the_old_model() -> None:
    loader = FakeLoader()
    gate = asyncio.Event()
    loader.models["v1"] = FakeModel("v1", seed=1, gate=gate)
    s = EmbedderService(loader, batch_max_wait_ms=0)
    await s.load("")
    old = loader.models["v1"]
    in_flight = asyncio.ensure_future(s.embed_query([Signal(history=[RatedMovie(10)])]))
    await asyncio.sleep(0.01)
    loader.models["v2"] = FakeModel("v2", seed=2)
    info = await s.load("v2")
    assert info.meta.version == "v2" and s.version == "v2"
    (_, v_new) = await s.embed_query([Signal(history=[RatedMovie(10)])])
    assert v_new == "v2"
    assert not old.closed  # still has a call in flight
    gate.set()
    (_, v_old) = await in_flight
    assert v_old == "v1"
    for _ in range(100):
        if old.closed:
            break
        await asyncio.sleep(0.01)
    assert old.closed
    await s.close()
    assert loader.models["v2"].closed


async def test_a_broken_or_missing_version_is_refused_and_the_old_one_serves() -> None:
    loader = FakeLoader()
    s = EmbedderService(loader)
    await s.load("")
    loader.fail.add("v9")
    loader.models["v9"] = FakeModel("v9")
    with pytest.raises(FailedPrecondition):
        await s.load("v9")
    with pytest.raises(NotFound):
        await s.load("nope")
    assert s.version == "v1"
    (r,), v = await s.embed_query([Signal(history=[RatedMovie(10)])])
    assert v == "v1" and r.vector.shape == (DIM,)
    await s.close()


async def test_file_watch_reloads_new_latest_and_skips_broken() -> None:
    loader = FakeLoader()
    s = EmbedderService(loader)
    await s.load("")
    assert not await s.reload_if_changed()
    loader.latest = "v2"
    assert await s.reload_if_changed()
    assert s.version == "v2"
    loader.latest = "v3"
    loader.fail.add("v3")
    assert not await s.reload_if_changed()
    assert s.version == "v2"
    await s.close()


async def test_queue_full_is_resource_exhausted() -> None:
    loader = FakeLoader()
    gate = asyncio.Event()
    loader.models["v1"] = FakeModel("v1", gate=gate)
    s = EmbedderService(loader, batch_max_size=1, batch_max_wait_ms=0, batch_max_queue=2)
    await s.load("")
    first = asyncio.ensure_future(s.embed_query([Signal(history=[RatedMovie(10)])]))
    await asyncio.sleep(0.01)
    with pytest.raises(ResourceExhausted):
        await s.embed_query([Signal(history=[RatedMovie(10)])] * 3)
    gate.set()
    await first
    await s.close()


def test_occupations() -> None:
    assert normalise_occupation("12") == "programmer"
    assert normalise_occupation("Technician") == "technician"
    assert normalise_occupation("21") is None
    assert normalise_occupation("astronaut") is None
    vocab_1m = ["academic/educator", "programmer", "technician/engineer"]
    assert occupation_index("engineer", vocab_1m) == 3
    assert occupation_index("17", ["engineer", "technician"]) == 1
    assert occupation_index("writer", vocab_1m) == 0
    assert occupation_index("", vocab_1m) == 0
