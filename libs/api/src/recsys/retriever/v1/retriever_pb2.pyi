from recsys.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchQuery(_message.Message):
    __slots__ = ("vector", "exclude_ids")
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_IDS_FIELD_NUMBER: _ClassVar[int]
    vector: _common_pb2.Vector
    exclude_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, vector: _Optional[_Union[_common_pb2.Vector, _Mapping]] = ..., exclude_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("space", "queries", "k", "filter", "version")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    space: _common_pb2.VectorSpace
    queries: _containers.RepeatedCompositeFieldContainer[SearchQuery]
    k: int
    filter: _common_pb2.MovieFilter
    version: str
    def __init__(self, space: _Optional[_Union[_common_pb2.VectorSpace, str]] = ..., queries: _Optional[_Iterable[_Union[SearchQuery, _Mapping]]] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.MovieFilter, _Mapping]] = ..., version: _Optional[str] = ...) -> None: ...

class SearchResult(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[_common_pb2.ScoredMovie]
    def __init__(self, hits: _Optional[_Iterable[_Union[_common_pb2.ScoredMovie, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResult]
    version: str
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResult, _Mapping]]] = ..., version: _Optional[str] = ...) -> None: ...

class VectorItem(_message.Message):
    __slots__ = ("movie_id", "vector", "year", "genres")
    MOVIE_ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    GENRES_FIELD_NUMBER: _ClassVar[int]
    movie_id: int
    vector: _common_pb2.Vector
    year: int
    genres: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, movie_id: _Optional[int] = ..., vector: _Optional[_Union[_common_pb2.Vector, _Mapping]] = ..., year: _Optional[int] = ..., genres: _Optional[_Iterable[str]] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("space", "version", "dimension", "items")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    space: _common_pb2.VectorSpace
    version: str
    dimension: int
    items: _containers.RepeatedCompositeFieldContainer[VectorItem]
    def __init__(self, space: _Optional[_Union[_common_pb2.VectorSpace, str]] = ..., version: _Optional[str] = ..., dimension: _Optional[int] = ..., items: _Optional[_Iterable[_Union[VectorItem, _Mapping]]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("upserted", "total")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    total: int
    def __init__(self, upserted: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("space", "version", "movie_ids")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    space: _common_pb2.VectorSpace
    version: str
    movie_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, space: _Optional[_Union[_common_pb2.VectorSpace, str]] = ..., version: _Optional[str] = ..., movie_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class GetVectorsRequest(_message.Message):
    __slots__ = ("space", "version", "movie_ids")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MOVIE_IDS_FIELD_NUMBER: _ClassVar[int]
    space: _common_pb2.VectorSpace
    version: str
    movie_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, space: _Optional[_Union[_common_pb2.VectorSpace, str]] = ..., version: _Optional[str] = ..., movie_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class GetVectorsResponse(_message.Message):
    __slots__ = ("items", "missing_ids")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[VectorItem]
    missing_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, items: _Optional[_Iterable[_Union[VectorItem, _Mapping]]] = ..., missing_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ActivateVersionRequest(_message.Message):
    __slots__ = ("space", "version")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    space: _common_pb2.VectorSpace
    version: str
    def __init__(self, space: _Optional[_Union[_common_pb2.VectorSpace, str]] = ..., version: _Optional[str] = ...) -> None: ...

class ActivateVersionResponse(_message.Message):
    __slots__ = ("previous_version",)
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    previous_version: str
    def __init__(self, previous_version: _Optional[str] = ...) -> None: ...

class DropVersionRequest(_message.Message):
    __slots__ = ("space", "version")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    space: _common_pb2.VectorSpace
    version: str
    def __init__(self, space: _Optional[_Union[_common_pb2.VectorSpace, str]] = ..., version: _Optional[str] = ...) -> None: ...

class DropVersionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("space", "version", "collection", "dimension", "count", "metric", "index_type", "serving")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    space: _common_pb2.VectorSpace
    version: str
    collection: str
    dimension: int
    count: int
    metric: str
    index_type: str
    serving: bool
    def __init__(self, space: _Optional[_Union[_common_pb2.VectorSpace, str]] = ..., version: _Optional[str] = ..., collection: _Optional[str] = ..., dimension: _Optional[int] = ..., count: _Optional[int] = ..., metric: _Optional[str] = ..., index_type: _Optional[str] = ..., serving: _Optional[bool] = ...) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("collections", "backend")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionInfo]
    backend: str
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionInfo, _Mapping]]] = ..., backend: _Optional[str] = ...) -> None: ...
