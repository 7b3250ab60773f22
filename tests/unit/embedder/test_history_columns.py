"""QuerySignal.history_columns (issue #15): the packed form of a history gives exactly the vector
the per-event messages give, with the same checks; both forms at once are refused."""

from __future__ import annotations

import numpy as np
import pytest
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2
from recsys_core.errors import InvalidArgument
from recsys_embedder.service import EmbedderService
from recsys_embedder.servicer import EmbedderServicer, _signal

from .test_service import svc  # noqa: F401  (the fake-model service fixture)

EVENTS = [(10, 5.0, 1_000), (777, 4.0, 2_000), (20, 0.0, 500), (30, 2.0, 2_000)]


def _messages(timed: bool = True) -> embedder_pb2.QuerySignal:
    return embedder_pb2.QuerySignal(
        history=[
            common_pb2.RatedMovie(
                movie_id=m, rating=r, rated_at={"seconds": t, "nanos": 250_000} if timed else None
            )
            for m, r, t in EVENTS
        ]
    )


def _columns(timed: bool = True) -> embedder_pb2.QuerySignal:
    return embedder_pb2.QuerySignal(
        history_columns=common_pb2.HistoryColumns(
            movie_ids=[m for m, _, _ in EVENTS],
            ratings=[r for _, r, _ in EVENTS],
            rated_at_us=[t * 1_000_000 + 250 for _, _, t in EVENTS] if timed else [],
        )
    )


@pytest.mark.parametrize("timed", [True, False])
async def test_columns_give_the_vector_of_the_messages(svc: EmbedderService, timed: bool) -> None:  # noqa: F811
    servicer = EmbedderServicer(svc)
    a = await servicer.EmbedQuery(embedder_pb2.EmbedQueryRequest(signals=[_messages(timed)]), None)
    b = await servicer.EmbedQuery(embedder_pb2.EmbedQueryRequest(signals=[_columns(timed)]), None)
    assert a == b and list(a.vectors[0].unknown_movie_ids) == [777]
    assert np.linalg.norm(a.vectors[0].vector.values) > 0


def test_bad_columns_are_invalid_argument_naming_the_field() -> None:
    both = _columns()
    both.history.add(movie_id=1)
    with pytest.raises(InvalidArgument, match="not both"):
        _signal(0, both)
    short = _columns()
    del short.history_columns.ratings[-1]
    with pytest.raises(InvalidArgument) as exc:
        _signal(2, short)
    assert exc.value.field == "signals[2].history_columns"
    far = _columns()
    far.history_columns.rated_at_us[1] = 2**62
    with pytest.raises(InvalidArgument) as exc:
        _signal(0, far)
    assert exc.value.field == "signals[0].history_columns.rated_at_us" and "[1]" in exc.value.message


async def test_columns_are_checked_like_messages(svc: EmbedderService) -> None:  # noqa: F811
    bad = _columns()
    bad.history_columns.movie_ids[2] = 0
    with pytest.raises(InvalidArgument) as exc:
        await EmbedderServicer(svc).EmbedQuery(embedder_pb2.EmbedQueryRequest(signals=[bad]), None)
    assert exc.value.field == "signals[0].history[2].movie_id"
