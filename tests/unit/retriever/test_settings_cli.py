"""Settings (RECSYS_RETRIEVER_*), the servicer's enum mapping and the `recsys retriever` CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from recsys.common.v1 import common_pb2
from recsys_core.settings import SettingsError, load_settings
from recsys_retriever import cli
from recsys_retriever.server import build_service
from recsys_retriever.servicer import space_from_pb, space_to_pb
from recsys_retriever.settings import RetrieverSettings


def test_defaults_are_an_embedded_lite_file_with_an_exact_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_RETRIEVER_MILVUS_URI", raising=False)
    s = load_settings(RetrieverSettings)
    assert s.resolved_uri == str(Path("var/retriever/milvus.db"))
    assert s.is_lite and s.resolved_index_type == "FLAT"


def test_a_server_uri_from_the_environment_defaults_to_hnsw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_RETRIEVER_MILVUS_URI", "http://milvus:19530")
    monkeypatch.setenv("RECSYS_RETRIEVER_MILVUS_TOKEN", "root:Milvus")
    monkeypatch.setenv("RECSYS_RETRIEVER_BATCH_MAX_WAIT_MS", "0")
    s = load_settings(RetrieverSettings)
    assert not s.is_lite and s.resolved_index_type == "HNSW"
    assert s.milvus_token is not None and "Milvus" not in repr(s)
    svc = build_service(s)
    assert svc.index.index_type == "HNSW" and not svc.batching


def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSYS_RETRIEVER_BATCH_MAX_SIZE", "0")
    monkeypatch.setenv("RECSYS_RETRIEVER_INDEX_TYPE", "IVF_PQ")
    with pytest.raises(SettingsError) as exc:
        load_settings(RetrieverSettings)
    assert set(exc.value.variables) == {"RECSYS_RETRIEVER_BATCH_MAX_SIZE", "RECSYS_RETRIEVER_INDEX_TYPE"}
    with pytest.raises(SettingsError):
        load_settings(RetrieverSettings, collection_prefix="bad-prefix")


def test_vector_space_mapping() -> None:
    assert space_from_pb(common_pb2.VECTOR_SPACE_UNSPECIFIED) is None
    assert space_from_pb(common_pb2.VECTOR_SPACE_TWO_TOWER) == "two_tower"
    assert space_to_pb("pinsage") == common_pb2.VECTOR_SPACE_PINSAGE
    assert space_from_pb(42) == "vector_space_42"  # rejected by the service as field "space"


def test_cli_registers_serve_and_describe() -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["retriever", "describe", "--target", "127.0.0.1:1", "--timeout", "0.5"])
    assert args.func is cli._describe
    assert cli._describe(args) == 1  # nothing listens there: a message, exit status 1
    assert parser.parse_args(["retriever", "serve"]).func is cli._serve


def test_the_lite_size_guard_is_set_for_lite_only_and_a_bad_value_fails_fast(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RECSYS_RETRIEVER_MILVUS_URI", raising=False)
    s = load_settings(RetrieverSettings)
    svc = build_service(s)
    assert svc.capacity is not None and svc.capacity.max_vectors == 200_000
    msg = str(svc.capacity.refusal("recsys_pinsage__v1", 300_000, "Upsert into"))
    assert "RECSYS_RETRIEVER_LITE_MAX_VECTORS" in msg and "RECSYS_RETRIEVER_MILVUS_URI" in msg
    monkeypatch.setenv("RECSYS_RETRIEVER_LITE_MAX_VECTORS", "1000")
    assert build_service(load_settings(RetrieverSettings)).capacity.max_vectors == 1000  # type: ignore[union-attr]
    monkeypatch.setenv("RECSYS_RETRIEVER_MILVUS_URI", "http://milvus:19530")
    assert build_service(load_settings(RetrieverSettings)).capacity is None  # a server: no limit
    for bad in ("0", "-5", "many"):
        monkeypatch.setenv("RECSYS_RETRIEVER_LITE_MAX_VECTORS", bad)
        with pytest.raises(SettingsError) as exc:
            load_settings(RetrieverSettings)
        assert set(exc.value.variables) == {"RECSYS_RETRIEVER_LITE_MAX_VECTORS"}
