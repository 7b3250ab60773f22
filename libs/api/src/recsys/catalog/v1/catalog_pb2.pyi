import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from recsys.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PopularityRanking(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POPULARITY_RANKING_UNSPECIFIED: _ClassVar[PopularityRanking]
    POPULARITY_RANKING_MOST_RATED: _ClassVar[PopularityRanking]
    POPULARITY_RANKING_BAYESIAN_AVERAGE: _ClassVar[PopularityRanking]
    POPULARITY_RANKING_RECENT: _ClassVar[PopularityRanking]
POPULARITY_RANKING_UNSPECIFIED: PopularityRanking
POPULARITY_RANKING_MOST_RATED: PopularityRanking
POPULARITY_RANKING_BAYESIAN_AVERAGE: PopularityRanking
POPULARITY_RANKING_RECENT: PopularityRanking

class GetMoviesRequest(_message.Message):
    __slots__ = ("movie_ids",)
    MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    movie_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, movie_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class GetMoviesResponse(_message.Message):
    __slots__ = ("movies", "missing_ids", "metadata_version")
    MOVIES_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    METADATA_VERSION_FIELD_NUMBER: _ClassVar[int]
    movies: _containers.RepeatedCompositeFieldContainer[_common_pb2.Movie]
    missing_ids: _containers.RepeatedScalarFieldContainer[int]
    metadata_version: int
    def __init__(self, movies: _Optional[_Iterable[_Union[_common_pb2.Movie, _Mapping]]] = ..., missing_ids: _Optional[_Iterable[int]] = ..., metadata_version: _Optional[int] = ...) -> None: ...

class SearchMoviesRequest(_message.Message):
    __slots__ = ("query", "limit")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    query: str
    limit: int
    def __init__(self, query: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("movie", "similarity")
    MOVIE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    movie: _common_pb2.Movie
    similarity: float
    def __init__(self, movie: _Optional[_Union[_common_pb2.Movie, _Mapping]] = ..., similarity: _Optional[float] = ...) -> None: ...

class SearchMoviesResponse(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ...) -> None: ...

class SampleMoviesRequest(_message.Message):
    __slots__ = ("n", "seed", "min_ratings", "filter", "exclude_ids")
    N_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MIN_RATINGS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_IDS_FIELD_NUMBER: _ClassVar[int]
    n: int
    seed: int
    min_ratings: int
    filter: _common_pb2.MovieFilter
    exclude_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, n: _Optional[int] = ..., seed: _Optional[int] = ..., min_ratings: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.MovieFilter, _Mapping]] = ..., exclude_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class SampleMoviesResponse(_message.Message):
    __slots__ = ("movies",)
    MOVIES_FIELD_NUMBER: _ClassVar[int]
    movies: _containers.RepeatedCompositeFieldContainer[_common_pb2.Movie]
    def __init__(self, movies: _Optional[_Iterable[_Union[_common_pb2.Movie, _Mapping]]] = ...) -> None: ...

class GetPopularRequest(_message.Message):
    __slots__ = ("k", "filter", "exclude_ids", "ranking", "half_life_days")
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_IDS_FIELD_NUMBER: _ClassVar[int]
    RANKING_FIELD_NUMBER: _ClassVar[int]
    HALF_LIFE_DAYS_FIELD_NUMBER: _ClassVar[int]
    k: int
    filter: _common_pb2.MovieFilter
    exclude_ids: _containers.RepeatedScalarFieldContainer[int]
    ranking: PopularityRanking
    half_life_days: float
    def __init__(self, k: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.MovieFilter, _Mapping]] = ..., exclude_ids: _Optional[_Iterable[int]] = ..., ranking: _Optional[_Union[PopularityRanking, str]] = ..., half_life_days: _Optional[float] = ...) -> None: ...

class GetPopularResponse(_message.Message):
    __slots__ = ("movies", "scores")
    MOVIES_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    movies: _containers.RepeatedCompositeFieldContainer[_common_pb2.Movie]
    scores: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, movies: _Optional[_Iterable[_Union[_common_pb2.Movie, _Mapping]]] = ..., scores: _Optional[_Iterable[float]] = ...) -> None: ...

class GetUsersRequest(_message.Message):
    __slots__ = ("user_ids",)
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, user_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class GetUsersResponse(_message.Message):
    __slots__ = ("users", "missing_ids")
    USERS_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[_common_pb2.User]
    missing_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, users: _Optional[_Iterable[_Union[_common_pb2.User, _Mapping]]] = ..., missing_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class GetUserHistoryRequest(_message.Message):
    __slots__ = ("user_id", "limit", "include_seen_ids", "columns")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SEEN_IDS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    limit: int
    include_seen_ids: bool
    columns: bool
    def __init__(self, user_id: _Optional[int] = ..., limit: _Optional[int] = ..., include_seen_ids: _Optional[bool] = ..., columns: _Optional[bool] = ...) -> None: ...

class GetUserHistoryResponse(_message.Message):
    __slots__ = ("ratings", "total", "seen_movie_ids", "columns")
    RATINGS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SEEN_MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ratings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Rating]
    total: int
    seen_movie_ids: _containers.RepeatedScalarFieldContainer[int]
    columns: _common_pb2.HistoryColumns
    def __init__(self, ratings: _Optional[_Iterable[_Union[_common_pb2.Rating, _Mapping]]] = ..., total: _Optional[int] = ..., seen_movie_ids: _Optional[_Iterable[int]] = ..., columns: _Optional[_Union[_common_pb2.HistoryColumns, _Mapping]] = ...) -> None: ...

class GetUserHistoriesRequest(_message.Message):
    __slots__ = ("user_ids", "limit", "include_seen_ids", "columns")
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SEEN_IDS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[int]
    limit: int
    include_seen_ids: bool
    columns: bool
    def __init__(self, user_ids: _Optional[_Iterable[int]] = ..., limit: _Optional[int] = ..., include_seen_ids: _Optional[bool] = ..., columns: _Optional[bool] = ...) -> None: ...

class UserHistory(_message.Message):
    __slots__ = ("user_id", "ratings", "total", "seen_movie_ids", "columns")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RATINGS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SEEN_MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    ratings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Rating]
    total: int
    seen_movie_ids: _containers.RepeatedScalarFieldContainer[int]
    columns: _common_pb2.HistoryColumns
    def __init__(self, user_id: _Optional[int] = ..., ratings: _Optional[_Iterable[_Union[_common_pb2.Rating, _Mapping]]] = ..., total: _Optional[int] = ..., seen_movie_ids: _Optional[_Iterable[int]] = ..., columns: _Optional[_Union[_common_pb2.HistoryColumns, _Mapping]] = ...) -> None: ...

class GetUserHistoriesResponse(_message.Message):
    __slots__ = ("histories", "missing_user_ids")
    HISTORIES_FIELD_NUMBER: _ClassVar[int]
    MISSING_USER_IDS_FIELD_NUMBER: _ClassVar[int]
    histories: _containers.RepeatedCompositeFieldContainer[UserHistory]
    missing_user_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, histories: _Optional[_Iterable[_Union[UserHistory, _Mapping]]] = ..., missing_user_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class RecordRatingsRequest(_message.Message):
    __slots__ = ("ratings", "create_missing_users")
    RATINGS_FIELD_NUMBER: _ClassVar[int]
    CREATE_MISSING_USERS_FIELD_NUMBER: _ClassVar[int]
    ratings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Rating]
    create_missing_users: bool
    def __init__(self, ratings: _Optional[_Iterable[_Union[_common_pb2.Rating, _Mapping]]] = ..., create_missing_users: _Optional[bool] = ...) -> None: ...

class RecordRatingsResponse(_message.Message):
    __slots__ = ("stored", "superseded", "created_user_ids")
    STORED_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_FIELD_NUMBER: _ClassVar[int]
    CREATED_USER_IDS_FIELD_NUMBER: _ClassVar[int]
    stored: _containers.RepeatedCompositeFieldContainer[_common_pb2.Rating]
    superseded: int
    created_user_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, stored: _Optional[_Iterable[_Union[_common_pb2.Rating, _Mapping]]] = ..., superseded: _Optional[int] = ..., created_user_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class UpsertMoviesRequest(_message.Message):
    __slots__ = ("movies",)
    MOVIES_FIELD_NUMBER: _ClassVar[int]
    movies: _containers.RepeatedCompositeFieldContainer[_common_pb2.Movie]
    def __init__(self, movies: _Optional[_Iterable[_Union[_common_pb2.Movie, _Mapping]]] = ...) -> None: ...

class UpsertMoviesResponse(_message.Message):
    __slots__ = ("inserted", "updated")
    INSERTED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    inserted: int
    updated: int
    def __init__(self, inserted: _Optional[int] = ..., updated: _Optional[int] = ...) -> None: ...

class NewMovie(_message.Message):
    __slots__ = ("movie", "similar_movie_ids")
    MOVIE_FIELD_NUMBER: _ClassVar[int]
    SIMILAR_MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    movie: _common_pb2.Movie
    similar_movie_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, movie: _Optional[_Union[_common_pb2.Movie, _Mapping]] = ..., similar_movie_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class AddMoviesRequest(_message.Message):
    __slots__ = ("movies",)
    MOVIES_FIELD_NUMBER: _ClassVar[int]
    movies: _containers.RepeatedCompositeFieldContainer[NewMovie]
    def __init__(self, movies: _Optional[_Iterable[_Union[NewMovie, _Mapping]]] = ...) -> None: ...

class AddedMovie(_message.Message):
    __slots__ = ("movie_id", "inserted", "inductive", "unknown_similar_ids")
    MOVIE_ID_FIELD_NUMBER: _ClassVar[int]
    INSERTED_FIELD_NUMBER: _ClassVar[int]
    INDUCTIVE_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_SIMILAR_IDS_FIELD_NUMBER: _ClassVar[int]
    movie_id: int
    inserted: bool
    inductive: bool
    unknown_similar_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, movie_id: _Optional[int] = ..., inserted: _Optional[bool] = ..., inductive: _Optional[bool] = ..., unknown_similar_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class AddMoviesResponse(_message.Message):
    __slots__ = ("movies", "model_version", "vector_version", "pending")
    MOVIES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    VECTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    movies: _containers.RepeatedCompositeFieldContainer[AddedMovie]
    model_version: str
    vector_version: str
    pending: int
    def __init__(self, movies: _Optional[_Iterable[_Union[AddedMovie, _Mapping]]] = ..., model_version: _Optional[str] = ..., vector_version: _Optional[str] = ..., pending: _Optional[int] = ...) -> None: ...

class RetryPendingMoviesRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class RefreshAddedMoviesRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class RefreshedMovie(_message.Message):
    __slots__ = ("movie_id", "inductive", "rating_count", "neighbour_movie_ids")
    MOVIE_ID_FIELD_NUMBER: _ClassVar[int]
    INDUCTIVE_FIELD_NUMBER: _ClassVar[int]
    RATING_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOUR_MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    movie_id: int
    inductive: bool
    rating_count: int
    neighbour_movie_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, movie_id: _Optional[int] = ..., inductive: _Optional[bool] = ..., rating_count: _Optional[int] = ..., neighbour_movie_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class RefreshAddedMoviesResponse(_message.Message):
    __slots__ = ("movies", "model_version", "vector_version", "remaining")
    MOVIES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    VECTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    movies: _containers.RepeatedCompositeFieldContainer[RefreshedMovie]
    model_version: str
    vector_version: str
    remaining: int
    def __init__(self, movies: _Optional[_Iterable[_Union[RefreshedMovie, _Mapping]]] = ..., model_version: _Optional[str] = ..., vector_version: _Optional[str] = ..., remaining: _Optional[int] = ...) -> None: ...

class ListMoviesRequest(_message.Message):
    __slots__ = ("after_id", "page_size")
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    after_id: int
    page_size: int
    def __init__(self, after_id: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListMoviesResponse(_message.Message):
    __slots__ = ("movies", "next_after_id")
    MOVIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    movies: _containers.RepeatedCompositeFieldContainer[_common_pb2.Movie]
    next_after_id: int
    def __init__(self, movies: _Optional[_Iterable[_Union[_common_pb2.Movie, _Mapping]]] = ..., next_after_id: _Optional[int] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("movie_count", "user_count", "rating_count", "schema_version", "genres", "dataset_name", "dataset_sha256", "loaded_at")
    MOVIE_COUNT_FIELD_NUMBER: _ClassVar[int]
    USER_COUNT_FIELD_NUMBER: _ClassVar[int]
    RATING_COUNT_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    GENRES_FIELD_NUMBER: _ClassVar[int]
    DATASET_NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_SHA256_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    movie_count: int
    user_count: int
    rating_count: int
    schema_version: int
    genres: _containers.RepeatedScalarFieldContainer[str]
    dataset_name: str
    dataset_sha256: str
    loaded_at: _timestamp_pb2.Timestamp
    def __init__(self, movie_count: _Optional[int] = ..., user_count: _Optional[int] = ..., rating_count: _Optional[int] = ..., schema_version: _Optional[int] = ..., genres: _Optional[_Iterable[str]] = ..., dataset_name: _Optional[str] = ..., dataset_sha256: _Optional[str] = ..., loaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
