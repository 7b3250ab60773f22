"""Timestamps in query signals are validated where they enter the embedder (issue #16, finding 4)."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2
from recsys_core.errors import InvalidArgument
from recsys_embedder.servicer import _signal


def _query(seconds: int, nanos: int) -> embedder_pb2.QuerySignal:
    return embedder_pb2.QuerySignal(
        history=[
            common_pb2.RatedMovie(movie_id=1, rated_at=Timestamp(seconds=881250949)),
            common_pb2.RatedMovie(movie_id=2, rated_at=Timestamp(seconds=seconds, nanos=nanos)),
        ]
    )


@pytest.mark.parametrize(
    ("seconds", "nanos", "part"),
    [(2**63 - 1, 0, "seconds"), (-(2**63), 0, "seconds"), (0, -1, "nanos"), (0, 10**9, "nanos")],
)
def test_invalid_rated_at_names_the_field(seconds: int, nanos: int, part: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        _signal(4, _query(seconds, nanos))
    assert exc.value.field == f"signals[4].history[1].rated_at.{part}"
    assert exc.value.message.startswith(f"signals[4].history[1].rated_at.{part} must be")


def test_valid_rated_at_becomes_seconds() -> None:
    sig = _signal(0, _query(881250950, 500_000_000))
    cols = sig.columns()
    assert list(cols.timestamps) == [881250949.0, pytest.approx(881250950.5)] and cols.timed.all()
    untimed = _signal(0, embedder_pb2.QuerySignal(history=[common_pb2.RatedMovie(movie_id=3)]))
    assert not untimed.columns().timed[0]
