from recsys.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Strategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRATEGY_UNSPECIFIED: _ClassVar[Strategy]
    STRATEGY_PERSONALIZED: _ClassVar[Strategy]
    STRATEGY_DEMOGRAPHIC: _ClassVar[Strategy]
    STRATEGY_BLENDED: _ClassVar[Strategy]
    STRATEGY_POPULAR: _ClassVar[Strategy]
STRATEGY_UNSPECIFIED: Strategy
STRATEGY_PERSONALIZED: Strategy
STRATEGY_DEMOGRAPHIC: Strategy
STRATEGY_BLENDED: Strategy
STRATEGY_POPULAR: Strategy

class RecommendRequest(_message.Message):
    __slots__ = ("user_id", "liked", "disliked_movie_ids", "demographics", "k", "exclude_seen", "filter")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIKED_FIELD_NUMBER: _ClassVar[int]
    DISLIKED_MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    DEMOGRAPHICS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_SEEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    liked: _containers.RepeatedCompositeFieldContainer[_common_pb2.RatedMovie]
    disliked_movie_ids: _containers.RepeatedScalarFieldContainer[int]
    demographics: _common_pb2.Demographics
    k: int
    exclude_seen: bool
    filter: _common_pb2.MovieFilter
    def __init__(self, user_id: _Optional[int] = ..., liked: _Optional[_Iterable[_Union[_common_pb2.RatedMovie, _Mapping]]] = ..., disliked_movie_ids: _Optional[_Iterable[int]] = ..., demographics: _Optional[_Union[_common_pb2.Demographics, _Mapping]] = ..., k: _Optional[int] = ..., exclude_seen: _Optional[bool] = ..., filter: _Optional[_Union[_common_pb2.MovieFilter, _Mapping]] = ...) -> None: ...

class Recommendation(_message.Message):
    __slots__ = ("movie", "score", "because_movie_id", "because_title")
    MOVIE_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BECAUSE_MOVIE_ID_FIELD_NUMBER: _ClassVar[int]
    BECAUSE_TITLE_FIELD_NUMBER: _ClassVar[int]
    movie: _common_pb2.Movie
    score: float
    because_movie_id: int
    because_title: str
    def __init__(self, movie: _Optional[_Union[_common_pb2.Movie, _Mapping]] = ..., score: _Optional[float] = ..., because_movie_id: _Optional[int] = ..., because_title: _Optional[str] = ...) -> None: ...

class RecommendResponse(_message.Message):
    __slots__ = ("recommendations", "strategy", "model_version", "unknown_movie_ids", "degraded")
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    recommendations: _containers.RepeatedCompositeFieldContainer[Recommendation]
    strategy: Strategy
    model_version: str
    unknown_movie_ids: _containers.RepeatedScalarFieldContainer[int]
    degraded: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, recommendations: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., strategy: _Optional[_Union[Strategy, str]] = ..., model_version: _Optional[str] = ..., unknown_movie_ids: _Optional[_Iterable[int]] = ..., degraded: _Optional[_Iterable[str]] = ...) -> None: ...

class SimilarMoviesRequest(_message.Message):
    __slots__ = ("movie_id", "k", "filter")
    MOVIE_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    movie_id: int
    k: int
    filter: _common_pb2.MovieFilter
    def __init__(self, movie_id: _Optional[int] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.MovieFilter, _Mapping]] = ...) -> None: ...

class SimilarMoviesResponse(_message.Message):
    __slots__ = ("movies", "model_version", "degraded")
    MOVIES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    movies: _containers.RepeatedCompositeFieldContainer[Recommendation]
    model_version: str
    degraded: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, movies: _Optional[_Iterable[_Union[Recommendation, _Mapping]]] = ..., model_version: _Optional[str] = ..., degraded: _Optional[_Iterable[str]] = ...) -> None: ...

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

class ListGenresRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListGenresResponse(_message.Message):
    __slots__ = ("genres", "degraded")
    GENRES_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    genres: _containers.RepeatedScalarFieldContainer[str]
    degraded: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, genres: _Optional[_Iterable[str]] = ..., degraded: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordFeedbackRequest(_message.Message):
    __slots__ = ("ratings",)
    RATINGS_FIELD_NUMBER: _ClassVar[int]
    ratings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Rating]
    def __init__(self, ratings: _Optional[_Iterable[_Union[_common_pb2.Rating, _Mapping]]] = ...) -> None: ...

class RecordFeedbackResponse(_message.Message):
    __slots__ = ("stored", "superseded")
    STORED_FIELD_NUMBER: _ClassVar[int]
    SUPERSEDED_FIELD_NUMBER: _ClassVar[int]
    stored: _containers.RepeatedCompositeFieldContainer[_common_pb2.Rating]
    superseded: int
    def __init__(self, stored: _Optional[_Iterable[_Union[_common_pb2.Rating, _Mapping]]] = ..., superseded: _Optional[int] = ...) -> None: ...

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

class SampleMoviesResponse(_message.Message):
    __slots__ = ("movies",)
    MOVIES_FIELD_NUMBER: _ClassVar[int]
    movies: _containers.RepeatedCompositeFieldContainer[_common_pb2.Movie]
    def __init__(self, movies: _Optional[_Iterable[_Union[_common_pb2.Movie, _Mapping]]] = ...) -> None: ...
