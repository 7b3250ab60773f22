"""Service names and enum values come from the generated descriptors, never from string literals
or enum arithmetic (issue #17 item 6)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from recsys.embedder.v1 import embedder_pb2

ROOT = Path(__file__).resolve().parents[3]
SOURCES = [
    ROOT / "libs" / "core" / "src" / "recsys_core",
    ROOT / "libs" / "tools" / "src" / "recsys_tools",
    ROOT / "services",
    ROOT / "gateway",
    ROOT / "web",
]
# a quoted full service name, e.g. "recsys.catalog.v1.Catalog" (docstrings are not code: skipped
# by requiring the name to be the whole string literal on a line that is not prose)
LITERAL = re.compile(r"""["']recsys\.[a-z]+\.v1\.[A-Z][A-Za-z]*["']""")


def test_no_service_name_literals_in_sources() -> None:
    offenders = []
    for root in SOURCES:
        for path in root.rglob("*.py"):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py", "_pb2.pyi")) or ".venv" in path.parts:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if LITERAL.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, offenders


def test_user_forms_map_by_name() -> None:
    from recsys_core.errors import InvalidArgument
    from recsys_embedder import servicer
    from recsys_embedder.backends.base import USER_FORMS

    for name in USER_FORMS:
        value = servicer._FORM_TO_PROTO[name]
        assert embedder_pb2.UserForm.Name(value) == "USER_FORM_" + name.upper()
        assert servicer._form(value, "form") == name
    assert servicer._form(embedder_pb2.USER_FORM_UNSPECIFIED, "form") is None
    with pytest.raises(InvalidArgument, match="unknown UserForm 99"):
        servicer._form(99, "form")


def test_gateway_contract_owns_its_messages() -> None:
    """The public API's RPCs take and return recsys.gateway.v1 messages only (issue #17 item 6):
    a change to the catalog's internal messages cannot change the public contract."""
    from recsys.gateway.v1 import gateway_pb2

    service = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"]
    foreign = [
        f"{m.name}: {t.full_name}"
        for m in service.methods
        for t in (m.input_type, m.output_type)
        if t.file.package != "recsys.gateway.v1"
    ]
    assert not foreign, foreign
    assert "recsys/catalog/v1/catalog.proto" not in [d.name for d in gateway_pb2.DESCRIPTOR.dependencies]


def test_gateway_movie_messages_keep_the_old_wire_format() -> None:
    """GetMovies/SearchMovies/SampleMovies used the catalog's messages before: the gateway's own
    have the same fields, so old clients' bytes parse the same both ways."""
    from recsys.catalog.v1 import catalog_pb2
    from recsys.common.v1 import common_pb2
    from recsys.gateway.v1 import gateway_pb2

    movie = common_pb2.Movie(movie_id=7, title="Heat", year=1995, genres=["Action"])
    pairs = [
        (catalog_pb2.GetMoviesRequest(movie_ids=[1, 2]), gateway_pb2.GetMoviesRequest),
        (
            catalog_pb2.GetMoviesResponse(movies=[movie], missing_ids=[9], metadata_version=3),
            gateway_pb2.GetMoviesResponse,
        ),
        (catalog_pb2.SearchMoviesRequest(query="heat", limit=5), gateway_pb2.SearchMoviesRequest),
        (
            catalog_pb2.SearchMoviesResponse(hits=[catalog_pb2.SearchHit(movie=movie, similarity=0.5)]),
            gateway_pb2.SearchMoviesResponse,
        ),
        (catalog_pb2.SampleMoviesResponse(movies=[movie]), gateway_pb2.SampleMoviesResponse),
    ]
    for old, new_type in pairs:
        new = new_type.FromString(old.SerializeToString())
        assert new.SerializeToString(deterministic=True) == old.SerializeToString(deterministic=True)
        assert [f.name for f in new.DESCRIPTOR.fields] == [f.name for f in old.DESCRIPTOR.fields]
        assert [f.number for f in new.DESCRIPTOR.fields] == [f.number for f in old.DESCRIPTOR.fields]
