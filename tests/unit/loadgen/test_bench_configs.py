"""bench/ghz: every checked-in config parses, names a real gateway method, and its call data
(the data generator's messages on a small synthetic data set, or inline ``data`` for a
request without fields) are valid requests for it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import json_format, message_factory
from recsys.gateway.v1 import gateway_pb2
from recsys_data import load_dataset
from recsys_data.synthetic import generate
from recsys_tools.loadgen import load_config

REPO = Path(__file__).resolve().parents[3]
GHZ = REPO / "bench" / "ghz"
CONFIGS = sorted(p for p in GHZ.glob("*.json"))
GATEWAY = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"]


def make_data_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ghz_make_data", GHZ / "make_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def messages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, object]]]:
    folder = generate(
        tmp_path_factory.mktemp("ml") / "syn", fmt="100k", n_users=40, n_movies=80, n_ratings=900
    )
    return make_data_module().build(load_dataset(folder), 50, seed=1)  # type: ignore[no-any-return]


def test_there_are_configs_for_the_gateway_rpcs() -> None:
    methods = {json.loads(p.read_text())["call"].rsplit(".", 1)[1] for p in CONFIGS}
    assert methods == set(GATEWAY.methods_by_name)
    assert (GHZ / "recommend.json").exists()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_parses_and_matches_generated_data(
    path: Path, messages: dict[str, list[dict[str, object]]]
) -> None:
    raw = json.loads(path.read_text())
    assert ("data" in raw) != ("data-file" in raw), "give data or data-file"
    if "data" in raw:  # inline: a request with no fields to vary
        cfg = load_config(path)
        calls = list(cfg.data)
    else:
        cfg = load_config(path, overrides={"data": {}})  # the data files are generated, not committed
        data_name = Path(raw["data-file"]).stem
        assert raw["data-file"] == f"bench/ghz/data/{data_name}.json"
        calls = messages[data_name]
    assert cfg.host.startswith("127.0.0.1:") and cfg.timeout > 0
    assert cfg.duration is not None or cfg.total is not None
    method = GATEWAY.methods_by_name[cfg.method]
    request_class = message_factory.GetMessageClass(method.input_type)
    assert calls, path.name
    for msg in calls:
        json_format.ParseDict(msg, request_class())  # raises on a wrong field or type


def test_generated_data_is_realistic(messages: dict[str, list[dict[str, object]]]) -> None:
    assert len(messages["recommend_user"]) == 50
    assert all(m["liked"] for m in messages["recommend_anonymous"])
    assert all(1 <= len(m["movie_ids"]) <= 50 for m in messages["get_movies"])  # type: ignore[arg-type]
    writes = [r["user_id"] for m in messages["record_feedback"] for r in m["ratings"]]  # type: ignore[attr-defined]
    assert min(writes) >= 10_000_000  # bench writes never touch data set users
