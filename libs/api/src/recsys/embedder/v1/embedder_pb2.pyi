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

class UserForm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USER_FORM_UNSPECIFIED: _ClassVar[UserForm]
    USER_FORM_LATEST: _ClassVar[UserForm]
    USER_FORM_MEAN: _ClassVar[UserForm]
    USER_FORM_RECENCY: _ClassVar[UserForm]
    USER_FORM_PINSAGE: _ClassVar[UserForm]
USER_FORM_UNSPECIFIED: UserForm
USER_FORM_LATEST: UserForm
USER_FORM_MEAN: UserForm
USER_FORM_RECENCY: UserForm
USER_FORM_PINSAGE: UserForm

class EmbedItemsRequest(_message.Message):
    __slots__ = ("space", "movie_ids")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    space: _common_pb2.VectorSpace
    movie_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, space: _Optional[_Union[_common_pb2.VectorSpace, str]] = ..., movie_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class EmbedItemsResponse(_message.Message):
    __slots__ = ("found_ids", "vectors", "missing_ids", "model_version")
    FOUND_IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    found_ids: _containers.RepeatedScalarFieldContainer[int]
    vectors: _containers.RepeatedCompositeFieldContainer[_common_pb2.Vector]
    missing_ids: _containers.RepeatedScalarFieldContainer[int]
    model_version: str
    def __init__(self, found_ids: _Optional[_Iterable[int]] = ..., vectors: _Optional[_Iterable[_Union[_common_pb2.Vector, _Mapping]]] = ..., missing_ids: _Optional[_Iterable[int]] = ..., model_version: _Optional[str] = ...) -> None: ...

class QuerySignal(_message.Message):
    __slots__ = ("history", "disliked_movie_ids", "demographics", "form", "history_columns")
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    DISLIKED_MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    DEMOGRAPHICS_FIELD_NUMBER: _ClassVar[int]
    FORM_FIELD_NUMBER: _ClassVar[int]
    HISTORY_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    history: _containers.RepeatedCompositeFieldContainer[_common_pb2.RatedMovie]
    disliked_movie_ids: _containers.RepeatedScalarFieldContainer[int]
    demographics: _common_pb2.Demographics
    form: UserForm
    history_columns: _common_pb2.HistoryColumns
    def __init__(self, history: _Optional[_Iterable[_Union[_common_pb2.RatedMovie, _Mapping]]] = ..., disliked_movie_ids: _Optional[_Iterable[int]] = ..., demographics: _Optional[_Union[_common_pb2.Demographics, _Mapping]] = ..., form: _Optional[_Union[UserForm, str]] = ..., history_columns: _Optional[_Union[_common_pb2.HistoryColumns, _Mapping]] = ...) -> None: ...

class EmbedQueryRequest(_message.Message):
    __slots__ = ("signals",)
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    signals: _containers.RepeatedCompositeFieldContainer[QuerySignal]
    def __init__(self, signals: _Optional[_Iterable[_Union[QuerySignal, _Mapping]]] = ...) -> None: ...

class QueryVector(_message.Message):
    __slots__ = ("vector", "space", "unknown_movie_ids", "form")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    FORM_FIELD_NUMBER: _ClassVar[int]
    vector: _common_pb2.Vector
    space: _common_pb2.VectorSpace
    unknown_movie_ids: _containers.RepeatedScalarFieldContainer[int]
    form: UserForm
    def __init__(self, vector: _Optional[_Union[_common_pb2.Vector, _Mapping]] = ..., space: _Optional[_Union[_common_pb2.VectorSpace, str]] = ..., unknown_movie_ids: _Optional[_Iterable[int]] = ..., form: _Optional[_Union[UserForm, str]] = ...) -> None: ...

class EmbedQueryResponse(_message.Message):
    __slots__ = ("vectors", "model_version")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[QueryVector]
    model_version: str
    def __init__(self, vectors: _Optional[_Iterable[_Union[QueryVector, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class MovieFeatures(_message.Message):
    __slots__ = ("title", "year", "genres")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    GENRES_FIELD_NUMBER: _ClassVar[int]
    title: str
    year: int
    genres: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, title: _Optional[str] = ..., year: _Optional[int] = ..., genres: _Optional[_Iterable[str]] = ...) -> None: ...

class EmbedNewMovieRequest(_message.Message):
    __slots__ = ("features", "neighbour_movie_ids")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOUR_MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    features: MovieFeatures
    neighbour_movie_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, features: _Optional[_Union[MovieFeatures, _Mapping]] = ..., neighbour_movie_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class EmbedNewMovieResponse(_message.Message):
    __slots__ = ("vector", "unknown_movie_ids", "model_version")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    vector: _common_pb2.Vector
    unknown_movie_ids: _containers.RepeatedScalarFieldContainer[int]
    model_version: str
    def __init__(self, vector: _Optional[_Union[_common_pb2.Vector, _Mapping]] = ..., unknown_movie_ids: _Optional[_Iterable[int]] = ..., model_version: _Optional[str] = ...) -> None: ...

class ModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfoResponse(_message.Message):
    __slots__ = ("version", "dimension", "metric", "metrics", "trained_at", "dataset", "backend", "movie_count", "default_form", "two_tower_dimension")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    TRAINED_AT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MOVIE_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FORM_FIELD_NUMBER: _ClassVar[int]
    TWO_TOWER_DIMENSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    dimension: int
    metric: str
    metrics: _containers.ScalarMap[str, float]
    trained_at: _timestamp_pb2.Timestamp
    dataset: str
    backend: str
    movie_count: int
    default_form: UserForm
    two_tower_dimension: int
    def __init__(self, version: _Optional[str] = ..., dimension: _Optional[int] = ..., metric: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., trained_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dataset: _Optional[str] = ..., backend: _Optional[str] = ..., movie_count: _Optional[int] = ..., default_form: _Optional[_Union[UserForm, str]] = ..., two_tower_dimension: _Optional[int] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...
