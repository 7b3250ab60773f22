"""The gateway's request size limit comes from its largest legitimate request (issue #16 item 7).

Each RPC's largest request that the gateway's own validation accepts is built with every list at
its limit and every id at the longest varint (int64 max). All of them must fit under
MAX_REQUEST_BYTES, and the largest must be within 4x of it: the limit is derived, not a guess.
"""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2
from recsys_core.validation import GENRE_MAX_CHARS, MAX_GENRES, QUERY_MAX_CHARS, YEAR_MAX, YEAR_MIN
from recsys_gateway import service
from recsys_gateway.settings import MAX_REQUEST_BYTES, GatewaySettings

BIG_ID = 2**63 - 1
LATEST = Timestamp(seconds=253_402_300_799, nanos=999_999_999)


def _filter() -> common_pb2.MovieFilter:
    genre = "G" * GENRE_MAX_CHARS
    return common_pb2.MovieFilter(
        genres_any=[genre] * MAX_GENRES, genres_all=[genre] * MAX_GENRES, year_min=YEAR_MIN, year_max=YEAR_MAX
    )


def largest_requests() -> dict[str, bytes]:
    n = service.MAX_SIGNAL_MOVIES
    recommend = gateway_pb2.RecommendRequest(
        liked=[common_pb2.RatedMovie(movie_id=BIG_ID - i, rating=4.5, rated_at=LATEST) for i in range(n)],
        disliked_movie_ids=[BIG_ID - n - i for i in range(n)],
        demographics=common_pb2.Demographics(gender=common_pb2.GENDER_FEMALE, age=120, occupation="o" * 64),
        k=service.MAX_K,
        exclude_seen=True,
        filter=_filter(),
    )
    service.validate_recommend(recommend)  # legitimate: the gateway's own checks accept it
    feedback = gateway_pb2.RecordFeedbackRequest(
        ratings=[
            common_pb2.Rating(user_id=BIG_ID, movie_id=BIG_ID - i, rating=4.5, rated_at=LATEST)
            for i in range(service.MAX_FEEDBACK)
        ]
    )
    sample = gateway_pb2.SampleMoviesRequest(
        n=service.MAX_SAMPLE,
        seed=-(2**63),
        min_ratings=2**31 - 1,
        filter=_filter(),
        exclude_ids=[BIG_ID - i for i in range(service.MAX_SAMPLE_EXCLUDE)],
    )
    get = gateway_pb2.GetMoviesRequest(movie_ids=[BIG_ID - i for i in range(service.MAX_GET_MOVIES)])
    search = gateway_pb2.SearchMoviesRequest(query="\U0001f3ac" * QUERY_MAX_CHARS, limit=100)
    similar = gateway_pb2.SimilarMoviesRequest(movie_id=BIG_ID, k=service.MAX_K, filter=_filter())
    return {
        "Recommend": recommend.SerializeToString(),
        "RecordFeedback": feedback.SerializeToString(),
        "SampleMovies": sample.SerializeToString(),
        "GetMovies": get.SerializeToString(),
        "SearchMovies": search.SerializeToString(),
        "SimilarMovies": similar.SerializeToString(),
        "ListGenres": gateway_pb2.ListGenresRequest().SerializeToString(),
    }


def test_every_rpc_is_covered() -> None:
    methods = set(gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].methods_by_name)
    assert methods == set(largest_requests())


@pytest.mark.parametrize("method", sorted(largest_requests()))
def test_the_largest_legitimate_request_fits(method: str) -> None:
    assert len(largest_requests()[method]) <= MAX_REQUEST_BYTES


def test_the_limit_is_derived_from_the_largest_request() -> None:
    largest = max(len(b) for b in largest_requests().values())
    assert MAX_REQUEST_BYTES // 4 <= largest <= MAX_REQUEST_BYTES, largest
    assert GatewaySettings().max_receive_message_bytes == MAX_REQUEST_BYTES
