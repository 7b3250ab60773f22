"""The batched query network equals the training engineer's PinSageNet.embed_user, and its ONNX
export and Triton configs agree with the artifact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from recsys_embedder.artifacts import load_artifact
from recsys_embedder.backends.base import INPUTS, OUT_QUERY, USER_FORMS, QueryInput, pad_batch
from recsys_embedder.backends.torch_backend import TorchQueryBackend, pick_device
from recsys_embedder.export import (
    config_pbtxt,
    export_onnx,
    parse_config_pbtxt,
    query_net,
    write_model_repository,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


def _random_inputs(n_items: int, seed: int, batch: int = 12) -> list[QueryInput]:
    rng = np.random.default_rng(seed)
    items = []
    for k in range(batch):
        n = int(rng.integers(0, 30))
        hist = rng.integers(0, n_items, n).astype(np.int64)
        rat = rng.choice([2.5, 3.0, 4.0, 5.0], n).astype(np.float32)
        dis = rng.integers(0, n_items, int(rng.integers(0, 3))).astype(np.int64)
        if n == 0 and len(dis) == 0:
            dis = np.array([1], np.int64)
        items.append(QueryInput(hist, rat, dis, k % len(USER_FORMS)))
    return items


def test_querynet_matches_pinsagenet_embed_user(artifact_root: Path) -> None:
    art = load_artifact(artifact_root)
    net = query_net(art)
    emb = torch.from_numpy(art.item_embeddings)
    items = _random_inputs(len(art.movie_ids), seed=0)
    batch = pad_batch(items)
    with torch.no_grad():
        got = net(*[torch.from_numpy(a) for a in batch.arrays().values()]).numpy()
        for k, q in enumerate(items):
            want = art.model.embed_user(
                emb,
                torch.from_numpy(q.history),
                torch.from_numpy(q.ratings),
                torch.arange(len(q.history)),  # already in time order
                torch.from_numpy(q.dislikes),
                USER_FORMS[q.form],
            ).numpy()
            np.testing.assert_allclose(got[k], want, atol=1e-5, err_msg=f"row {k} form {USER_FORMS[q.form]}")


def test_empty_rows_give_zero_and_dislikes_point_away(artifact_root: Path) -> None:
    art = load_artifact(artifact_root)
    backend = TorchQueryBackend(query_net(art), torch.device("cpu"))
    hist = np.arange(6, dtype=np.int64)
    rat = np.full(6, 4.0, np.float32)
    out = backend.run(
        pad_batch(
            [
                QueryInput(hist, rat, np.zeros(0, np.int64), 3),
                QueryInput(hist, rat, np.array([20, 21], np.int64), 3),
                QueryInput(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64), 3),
            ]
        )
    )
    d = art.item_embeddings[[20, 21]].mean(0)
    d /= np.linalg.norm(d)
    assert float(out[1] @ d) < float(out[0] @ d) - 0.1  # measurably away from the dislikes
    assert np.allclose(out[2], 0.0)
    assert np.allclose(np.linalg.norm(out[:2], axis=1), 1.0, atol=1e-5)


def test_device_setting() -> None:
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        from recsys_core.errors import FailedPrecondition

        with pytest.raises(FailedPrecondition):
            pick_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_cuda_backend_matches_cpu(artifact_root: Path) -> None:
    art = load_artifact(artifact_root)
    batch = pad_batch(_random_inputs(len(art.movie_ids), seed=3))
    cpu = TorchQueryBackend(query_net(art), torch.device("cpu")).run(batch)
    gpu = TorchQueryBackend(query_net(art), torch.device("cuda")).run(batch)
    np.testing.assert_allclose(cpu, gpu, atol=1e-5)


def test_onnx_export_matches_torch(artifact_root: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    art = load_artifact(artifact_root)
    path = export_onnx(art, tmp_path / "q.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    net = query_net(art)
    for seed, size in ((1, 1), (2, 7), (4, 33)):
        batch = pad_batch(_random_inputs(len(art.movie_ids), seed=seed, batch=size))
        got = sess.run([OUT_QUERY], batch.arrays())[0]
        with torch.no_grad():
            want = net(*[torch.from_numpy(a) for a in batch.arrays().values()]).numpy()
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_model_repository_config_matches_manifest(artifact_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnx", reason="onnx not installed")
    art = load_artifact(artifact_root)
    for kind, instance, head in (("onnx", "KIND_GPU", "platform"), ("python", "KIND_CPU", "backend")):
        model_dir = write_model_repository(art, tmp_path / kind, kind=kind, site_packages=["/x"])
        cfg = parse_config_pbtxt((model_dir / "config.pbtxt").read_text())
        assert head in cfg
        assert cfg["name"] == "recsys_query"
        assert cfg["dynamic_batching"] is True
        assert cfg["instance_kinds"] == [instance]
        assert cfg["parameters"]["artifact_version"] == art.manifest["version"]
        assert [(n, d) for n, d, _ in cfg["inputs"]] == list(INPUTS)
        assert cfg["outputs"] == [(OUT_QUERY, "FP32", [art.dimension])]
        assert int(cfg["parameters"]["dimension"]) == art.manifest["models"]["pinsage"]["model_config"]["dim"]
        assert (model_dir / "1" / "model.onnx").is_file()
    assert (tmp_path / "python" / "recsys_query" / "1" / "model.py").is_file()


def test_committed_deploy_template_uses_the_shared_tensor_names() -> None:
    path = REPO_ROOT / "deploy" / "triton" / "recsys_query" / "config.pbtxt"
    cfg = parse_config_pbtxt(path.read_text())
    assert cfg["platform"] == "onnxruntime_onnx"
    assert cfg["instance_kinds"] == ["KIND_GPU"]
    assert cfg["dynamic_batching"] is True
    assert [(n, d) for n, d, _ in cfg["inputs"]] == list(INPUTS)
    assert cfg["outputs"][0][0] == OUT_QUERY
    # the template is what `recsys embedder export` writes, up to the version/dimension
    dim = cfg["outputs"][0][2][0]
    again = config_pbtxt(name="recsys_query", dimension=dim, version=cfg["parameters"]["artifact_version"])
    assert parse_config_pbtxt(again) == cfg
