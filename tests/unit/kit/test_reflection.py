"""Method/field symbol fallback of the kit's reflection."""

from __future__ import annotations

from google.protobuf import descriptor_pool
from recsys.catalog.v1 import catalog_pb2
from recsys_core.reflection import find_file_for_member


def test_find_file_for_member() -> None:
    pool = descriptor_pool.Default()
    assert catalog_pb2.DESCRIPTOR.name == "recsys/catalog/v1/catalog.proto"
    for symbol in (
        "recsys.catalog.v1.Catalog.GetMovies",
        "recsys.catalog.v1.GetMoviesRequest.movie_ids",
        "recsys.catalog.v1.PopularityRanking.POPULARITY_RANKING_MOST_RATED",
    ):
        fd = find_file_for_member(pool, symbol)
        assert fd is not None and fd.name == "recsys/catalog/v1/catalog.proto", symbol
    for symbol in ("recsys.catalog.v1.Catalog.Nope", "no.such.Thing.X", "Catalog", ""):
        assert find_file_for_member(pool, symbol) is None
