"""The committed gRPC code must be exactly what scripts/gen_protos.py generates now."""

from __future__ import annotations

import filecmp
import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "libs" / "api" / "src"


def _load_codegen():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_protos"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is needed to regenerate the code")
    gen = _load_codegen()
    fresh = gen.generate(tmp_path)
    assert fresh, "codegen produced nothing"
    stale: list[str] = []
    for path in fresh:
        rel = path.relative_to(tmp_path)
        committed = COMMITTED / rel
        if not committed.exists() or not filecmp.cmp(path, committed, shallow=False):
            stale.append(str(rel))
    # Committed generated files that protos no longer produce are stale too.
    fresh_rel = {p.relative_to(tmp_path) for p in fresh}
    for path in (COMMITTED / "recsys").rglob("*"):
        if path.is_file() and path.suffix in {".py", ".pyi"} and path.relative_to(COMMITTED) not in fresh_rel:
            stale.append(f"{path.relative_to(COMMITTED)} (no longer generated)")
    assert not stale, f"generated code is stale, run `python scripts/gen_protos.py`: {stale}"


@pytest.mark.parametrize("svc", ["common", "catalog", "retriever", "embedder", "gateway"])
def test_generated_modules_import(svc: str) -> None:
    pb2 = importlib.import_module(f"recsys.{svc}.v1.{svc}_pb2")
    importlib.import_module(f"recsys.{svc}.v1.{svc}_pb2_grpc")
    assert pb2.DESCRIPTOR.package == f"recsys.{svc}.v1"


def test_every_service_has_batch_reads() -> None:
    """Batch RPCs from day one: each id-taking read accepts many ids."""
    from recsys.catalog.v1 import catalog_pb2
    from recsys.embedder.v1 import embedder_pb2
    from recsys.retriever.v1 import retriever_pb2

    def repeated(msg, field: str) -> bool:  # type: ignore[no-untyped-def]
        fd = msg.DESCRIPTOR.fields_by_name[field]
        return bool(fd.label == fd.LABEL_REPEATED)

    assert repeated(catalog_pb2.GetMoviesRequest, "movie_ids")
    assert repeated(catalog_pb2.GetUsersRequest, "user_ids")
    assert repeated(retriever_pb2.SearchRequest, "queries")
    assert repeated(embedder_pb2.EmbedQueryRequest, "signals")
    assert repeated(embedder_pb2.EmbedItemsRequest, "movie_ids")


def test_codegen_detects_staleness(tmp_path: Path) -> None:
    """The freshness check really fails on a changed file (the test above can fail)."""
    pytest.importorskip("grpc_tools")
    gen = _load_codegen()
    fresh = gen.generate(tmp_path)
    target = next(p for p in fresh if p.name == "common_pb2.py")
    target.write_text(target.read_text() + "\n# edited\n")
    assert not filecmp.cmp(target, COMMITTED / target.relative_to(tmp_path), shallow=False)
