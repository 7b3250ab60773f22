import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Gender(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GENDER_UNSPECIFIED: _ClassVar[Gender]
    GENDER_FEMALE: _ClassVar[Gender]
    GENDER_MALE: _ClassVar[Gender]

class VectorSpace(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VECTOR_SPACE_UNSPECIFIED: _ClassVar[VectorSpace]
    VECTOR_SPACE_PINSAGE: _ClassVar[VectorSpace]
    VECTOR_SPACE_TWO_TOWER: _ClassVar[VectorSpace]
GENDER_UNSPECIFIED: Gender
GENDER_FEMALE: Gender
GENDER_MALE: Gender
VECTOR_SPACE_UNSPECIFIED: VectorSpace
VECTOR_SPACE_PINSAGE: VectorSpace
VECTOR_SPACE_TWO_TOWER: VectorSpace

class Movie(_message.Message):
    __slots__ = ("movie_id", "title", "year", "genres", "imdb_id", "tmdb_id", "poster_url", "info_url", "rating_count", "rating_mean", "added_since_training")
    MOVIE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    GENRES_FIELD_NUMBER: _ClassVar[int]
    IMDB_ID_FIELD_NUMBER: _ClassVar[int]
    TMDB_ID_FIELD_NUMBER: _ClassVar[int]
    POSTER_URL_FIELD_NUMBER: _ClassVar[int]
    INFO_URL_FIELD_NUMBER: _ClassVar[int]
    RATING_COUNT_FIELD_NUMBER: _ClassVar[int]
    RATING_MEAN_FIELD_NUMBER: _ClassVar[int]
    ADDED_SINCE_TRAINING_FIELD_NUMBER: _ClassVar[int]
    movie_id: int
    title: str
    year: int
    genres: _containers.RepeatedScalarFieldContainer[str]
    imdb_id: str
    tmdb_id: int
    poster_url: str
    info_url: str
    rating_count: int
    rating_mean: float
    added_since_training: bool
    def __init__(self, movie_id: _Optional[int] = ..., title: _Optional[str] = ..., year: _Optional[int] = ..., genres: _Optional[_Iterable[str]] = ..., imdb_id: _Optional[str] = ..., tmdb_id: _Optional[int] = ..., poster_url: _Optional[str] = ..., info_url: _Optional[str] = ..., rating_count: _Optional[int] = ..., rating_mean: _Optional[float] = ..., added_since_training: _Optional[bool] = ...) -> None: ...

class Demographics(_message.Message):
    __slots__ = ("gender", "age", "occupation", "zip_code")
    GENDER_FIELD_NUMBER: _ClassVar[int]
    AGE_FIELD_NUMBER: _ClassVar[int]
    OCCUPATION_FIELD_NUMBER: _ClassVar[int]
    ZIP_CODE_FIELD_NUMBER: _ClassVar[int]
    gender: Gender
    age: int
    occupation: str
    zip_code: str
    def __init__(self, gender: _Optional[_Union[Gender, str]] = ..., age: _Optional[int] = ..., occupation: _Optional[str] = ..., zip_code: _Optional[str] = ...) -> None: ...

class User(_message.Message):
    __slots__ = ("user_id", "demographics")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEMOGRAPHICS_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    demographics: Demographics
    def __init__(self, user_id: _Optional[int] = ..., demographics: _Optional[_Union[Demographics, _Mapping]] = ...) -> None: ...

class Rating(_message.Message):
    __slots__ = ("user_id", "movie_id", "rating", "rated_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MOVIE_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    RATED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    movie_id: int
    rating: float
    rated_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[int] = ..., movie_id: _Optional[int] = ..., rating: _Optional[float] = ..., rated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class HistoryColumns(_message.Message):
    __slots__ = ("movie_ids", "ratings", "rated_at_us")
    MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    RATINGS_FIELD_NUMBER: _ClassVar[int]
    RATED_AT_US_FIELD_NUMBER: _ClassVar[int]
    movie_ids: _containers.RepeatedScalarFieldContainer[int]
    ratings: _containers.RepeatedScalarFieldContainer[float]
    rated_at_us: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, movie_ids: _Optional[_Iterable[int]] = ..., ratings: _Optional[_Iterable[float]] = ..., rated_at_us: _Optional[_Iterable[int]] = ...) -> None: ...

class RatedMovie(_message.Message):
    __slots__ = ("movie_id", "rating", "rated_at")
    MOVIE_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    RATED_AT_FIELD_NUMBER: _ClassVar[int]
    movie_id: int
    rating: float
    rated_at: _timestamp_pb2.Timestamp
    def __init__(self, movie_id: _Optional[int] = ..., rating: _Optional[float] = ..., rated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MovieFilter(_message.Message):
    __slots__ = ("genres_any", "genres_all", "year_min", "year_max")
    GENRES_ANY_FIELD_NUMBER: _ClassVar[int]
    GENRES_ALL_FIELD_NUMBER: _ClassVar[int]
    YEAR_MIN_FIELD_NUMBER: _ClassVar[int]
    YEAR_MAX_FIELD_NUMBER: _ClassVar[int]
    genres_any: _containers.RepeatedScalarFieldContainer[str]
    genres_all: _containers.RepeatedScalarFieldContainer[str]
    year_min: int
    year_max: int
    def __init__(self, genres_any: _Optional[_Iterable[str]] = ..., genres_all: _Optional[_Iterable[str]] = ..., year_min: _Optional[int] = ..., year_max: _Optional[int] = ...) -> None: ...

class ScoredMovie(_message.Message):
    __slots__ = ("movie_id", "score")
    MOVIE_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    movie_id: int
    score: float
    def __init__(self, movie_id: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...
