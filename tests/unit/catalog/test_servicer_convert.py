"""The catalog servicer's hot conversions (issue #15): timestamps set field by field must equal
protobuf's own Timestamp.FromDatetime, and histories built in place must equal the message form."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from recsys.catalog.v1 import catalog_pb2
from recsys.common.v1 import common_pb2
from recsys_catalog.model import History, Rating
from recsys_catalog.servicer import _timestamp, history_to_pb

UTC = dt.UTC


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2001, 1, 1, 0, 0, 5, 7, tzinfo=UTC),
        dt.datetime(1970, 1, 1, tzinfo=UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),  # negative seconds, nanos >= 0
        dt.datetime(1900, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))),  # another offset
        dt.datetime(1, 1, 1, tzinfo=UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ],
)
def test_timestamp_equals_from_datetime(value: dt.datetime) -> None:
    expected = Timestamp()
    expected.FromDatetime(value.astimezone(UTC).replace(tzinfo=None))
    assert _timestamp(value) == expected


def test_history_built_in_place_equals_the_message_form() -> None:
    t0 = dt.datetime(2020, 5, 1, 12, 0, 0, 250, tzinfo=UTC)
    ratings = [Rating(7, m, 0.5 * m, t0 - dt.timedelta(seconds=m)) for m in (3, 1, 2)]
    h = History(7, ratings, total=5, seen_movie_ids=[1, 2, 3, 4, 5])
    expected = catalog_pb2.UserHistory(
        user_id=7,
        total=5,
        seen_movie_ids=[1, 2, 3, 4, 5],
        ratings=[
            common_pb2.Rating(
                user_id=7, movie_id=r.movie_id, rating=r.rating, rated_at=_timestamp(r.rated_at)
            )
            for r in ratings
        ],
    )
    assert history_to_pb(h) == expected
    assert history_to_pb(h).ratings[0].rated_at.nanos == 250_000
