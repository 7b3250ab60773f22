"""Proto <-> domain for the Embedder service. Errors are raised (the kit maps them)."""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import timestamp_pb2
from recsys.common.v1 import common_pb2
from recsys.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from recsys_core.errors import InvalidArgument
from recsys_core.validation import NANOS_MAX, TIMESTAMP_MAX_SECONDS, TIMESTAMP_MIN_SECONDS, check_timestamp

from recsys_embedder.backends.base import USER_FORMS
from recsys_embedder.service import (
    PINSAGE,
    TWO_TOWER,
    Demographics,
    EmbedderService,
    HistoryColumns,
    Info,
    Signal,
)

SERVICE_NAME = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name

# UserForm enum values by name (USER_FORM_<FORM>), not by position: a KeyError at import names a
# form of backends.base.USER_FORMS the contract lacks.
_FORM_TO_PROTO = {name: embedder_pb2.UserForm.Value("USER_FORM_" + name.upper()) for name in USER_FORMS}
_PROTO_TO_FORM = {v: name for name, v in _FORM_TO_PROTO.items()}
_SPACE_TO_PROTO = {PINSAGE: common_pb2.VECTOR_SPACE_PINSAGE, TWO_TOWER: common_pb2.VECTOR_SPACE_TWO_TOWER}
_GENDER = {common_pb2.GENDER_FEMALE: "F", common_pb2.GENDER_MALE: "M"}


def _vector(v: np.ndarray) -> common_pb2.Vector:
    return common_pb2.Vector(values=np.asarray(v, dtype=np.float32).tolist())


def _form(value: int, field: str) -> str | None:
    if value == embedder_pb2.USER_FORM_UNSPECIFIED:
        return None
    form = _PROTO_TO_FORM.get(value)
    if form is not None:
        return form
    raise InvalidArgument(f"{field}: unknown UserForm {value}", field=field)


def _history(k: int, hist: Any) -> HistoryColumns:
    """The repeated RatedMovie field as arrays, one pass per column (no object per event: a
    user history is up to 1,000 events on every Recommend by user id); every rated_at is
    range-checked (recsys_core.validation), the first bad one named."""
    n = len(hist)
    timed = np.fromiter((h.HasField("rated_at") for h in hist), bool, n)
    seconds = np.fromiter((h.rated_at.seconds for h in hist), np.int64, n)
    nanos = np.fromiter((h.rated_at.nanos for h in hist), np.int64, n)
    out_of_range = (seconds < TIMESTAMP_MIN_SECONDS) | (seconds > TIMESTAMP_MAX_SECONDS)
    bad = np.flatnonzero(timed & (out_of_range | (nanos < 0) | (nanos > NANOS_MAX)))
    if bad.size:
        j = int(bad[0])
        check_timestamp(hist[j].rated_at, f"signals[{k}].history[{j}].rated_at")  # raises, worded
    return HistoryColumns(
        np.fromiter((h.movie_id for h in hist), np.int64, n),
        np.fromiter((h.rating for h in hist), np.float64, n),
        seconds + nanos * 1e-9,
        timed,
    )


_US_MIN = TIMESTAMP_MIN_SECONDS * 1_000_000
_US_MAX = TIMESTAMP_MAX_SECONDS * 1_000_000 + 999_999


def _history_columns(k: int, c: common_pb2.HistoryColumns) -> HistoryColumns:
    """QuerySignal.history_columns as arrays: packed fields, no per-event work in Python."""
    field = f"signals[{k}].history_columns"
    n = len(c.movie_ids)
    if len(c.ratings) != n or len(c.rated_at_us) not in (0, n):
        raise InvalidArgument(
            f"{field}: movie_ids ({n}), ratings ({len(c.ratings)}) and rated_at_us "
            f"({len(c.rated_at_us)}) must have the same length (rated_at_us may be empty)",
            field=field,
        )
    if len(c.rated_at_us):
        us = np.fromiter(c.rated_at_us, np.int64, n)
        bad = np.flatnonzero((us < _US_MIN) | (us > _US_MAX))
        if bad.size:
            j = int(bad[0])
            raise InvalidArgument(
                f"{field}.rated_at_us[{j}] must be {_US_MIN}..{_US_MAX} (years 1..9999), got {int(us[j])}",
                field=f"{field}.rated_at_us",
            )
        times, timed = us / 1e6, np.ones(n, bool)
    else:
        times, timed = np.zeros(n, np.float64), np.zeros(n, bool)
    return HistoryColumns(
        np.fromiter(c.movie_ids, np.int64, n), np.fromiter(c.ratings, np.float64, n), times, timed
    )


def _signal(k: int, s: embedder_pb2.QuerySignal) -> Signal:
    if s.HasField("history_columns"):
        if len(s.history):
            raise InvalidArgument(
                f"signals[{k}]: give history or history_columns, not both", field=f"signals[{k}].history"
            )
        history = _history_columns(k, s.history_columns)
    else:
        history = _history(k, s.history)
    demo = None
    if s.HasField("demographics"):
        d = s.demographics
        if d.gender not in (common_pb2.GENDER_UNSPECIFIED, *_GENDER):
            raise InvalidArgument(
                f"signals[{k}].demographics.gender: unknown value {d.gender}",
                field=f"signals[{k}].demographics.gender",
            )
        if len(d.zip_code) > 16:
            raise InvalidArgument(
                f"signals[{k}].demographics.zip_code: at most 16 characters",
                field=f"signals[{k}].demographics.zip_code",
            )
        demo = Demographics(gender=_GENDER.get(d.gender), age=int(d.age), occupation=d.occupation)
    return Signal(
        history=history,
        disliked=list(s.disliked_movie_ids),
        demographics=demo,
        form=_form(s.form, f"signals[{k}].form"),
    )


def model_info_response(info: Info) -> embedder_pb2.ModelInfoResponse:
    meta = info.meta
    resp = embedder_pb2.ModelInfoResponse(
        version=meta.version,
        dimension=meta.dimension,
        metric=meta.metric,
        metrics=meta.metrics,
        dataset=meta.dataset,
        backend=info.backend,
        movie_count=info.movie_count,
        default_form=_FORM_TO_PROTO.get(meta.default_form, embedder_pb2.USER_FORM_UNSPECIFIED),
        two_tower_dimension=info.two_tower_dimension,
    )
    if meta.trained_at is not None:
        ts = timestamp_pb2.Timestamp()
        ts.FromDatetime(meta.trained_at)
        resp.trained_at.CopyFrom(ts)
    return resp


class EmbedderServicer(embedder_pb2_grpc.EmbedderServicer):
    def __init__(self, service: EmbedderService) -> None:
        self.service = service

    async def EmbedItems(
        self, request: embedder_pb2.EmbedItemsRequest, context: Any
    ) -> embedder_pb2.EmbedItemsResponse:
        if request.space == common_pb2.VECTOR_SPACE_TWO_TOWER:
            space = TWO_TOWER
        elif request.space in (common_pb2.VECTOR_SPACE_UNSPECIFIED, common_pb2.VECTOR_SPACE_PINSAGE):
            space = PINSAGE
        else:
            raise InvalidArgument(f"space: unknown VectorSpace {request.space}", field="space")
        res = await self.service.embed_items(list(request.movie_ids), space)
        return embedder_pb2.EmbedItemsResponse(
            found_ids=res.found_ids,
            vectors=[_vector(v) for v in res.vectors],
            missing_ids=res.missing_ids,
            model_version=res.version,
        )

    async def EmbedQuery(
        self, request: embedder_pb2.EmbedQueryRequest, context: Any
    ) -> embedder_pb2.EmbedQueryResponse:
        signals = [_signal(k, s) for k, s in enumerate(request.signals)]
        results, version = await self.service.embed_query(signals)
        return embedder_pb2.EmbedQueryResponse(
            vectors=[
                embedder_pb2.QueryVector(
                    vector=_vector(r.vector),
                    space=_SPACE_TO_PROTO[r.space],
                    unknown_movie_ids=r.unknown_ids,
                    form=_FORM_TO_PROTO.get(r.form or "", embedder_pb2.USER_FORM_UNSPECIFIED),
                )
                for r in results
            ],
            model_version=version,
        )

    async def EmbedNewMovie(
        self, request: embedder_pb2.EmbedNewMovieRequest, context: Any
    ) -> embedder_pb2.EmbedNewMovieResponse:
        f = request.features
        res = await self.service.embed_new_movie(
            f.title, int(f.year), list(f.genres), list(request.neighbour_movie_ids)
        )
        return embedder_pb2.EmbedNewMovieResponse(
            vector=_vector(res.vector), unknown_movie_ids=res.unknown_ids, model_version=res.version
        )

    async def ModelInfo(
        self, request: embedder_pb2.ModelInfoRequest, context: Any
    ) -> embedder_pb2.ModelInfoResponse:
        return model_info_response(self.service.info())

    async def Reload(
        self, request: embedder_pb2.ReloadRequest, context: Any
    ) -> embedder_pb2.ModelInfoResponse:
        return model_info_response(await self.service.load(request.version))
