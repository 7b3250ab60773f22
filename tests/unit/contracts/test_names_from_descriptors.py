"""Service names and enum values come from the generated descriptors, never from string literals
or enum arithmetic (issue #17 item 6)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from recsys.embedder.v1 import embedder_pb2

ROOT = Path(__file__).resolve().parents[3]
SOURCES = [ROOT / "libs" / "core" / "src" / "recsys_core", ROOT / "services", ROOT / "gateway", ROOT / "web"]
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
