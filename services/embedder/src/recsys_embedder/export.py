"""Export the query network to ONNX and write a Triton model repository.

Two repository kinds from one ONNX file:

- ``onnx`` (production, ``deploy/triton/``): ``platform: "onnxruntime_onnx"``, a GPU
  instance group, dynamic batching. The NGC Triton image runs it on a GPU.
- ``python`` (tests and the CPU bench): the python backend running the same
  ``model.onnx`` through onnxruntime (``nvidia-pytriton``'s bundled ``tritonserver``
  only has the python backend). ``model.py`` puts the given site-packages folder
  on ``sys.path`` (read from ``site_packages.txt`` beside it) so it finds numpy
  and onnxruntime.

Both configs carry ``parameters { key: "artifact_version" }``, which the Triton
client checks before serving (a model exported from another artifact version
has another item table). Tensor names come from ``backends.base``.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys_embedder.artifacts import Artifact
from recsys_embedder.backends.base import (
    IN_DISLIKE_MASK,
    IN_DISLIKES,
    IN_FORM,
    IN_HISTORY,
    IN_MASK,
    IN_RATINGS,
    INPUTS,
    OUT_QUERY,
    USER_FORMS,
    QueryInput,
    pad_batch,
)
from recsys_embedder.backends.querynet import QueryNet

DEFAULT_MODEL_NAME = "recsys_query"
DEFAULT_MAX_BATCH = 256
ONNX_OPSET = 17
_DIMS = {IN_HISTORY: -1, IN_RATINGS: -1, IN_MASK: -1, IN_DISLIKES: -1, IN_DISLIKE_MASK: -1, IN_FORM: 1}


def query_net(art: Artifact) -> QueryNet:
    return QueryNet(art.model, torch.from_numpy(np.ascontiguousarray(art.item_embeddings))).eval()


def _example(n_items: int) -> tuple[torch.Tensor, ...]:
    rows = np.arange(min(n_items, 3), dtype=np.int64)
    items = [
        QueryInput(rows, np.full(len(rows), 4.0, np.float32), rows[:1], f % len(USER_FORMS)) for f in range(2)
    ]
    b = pad_batch(items, min_len=4)
    return tuple(torch.from_numpy(a) for a in b.arrays().values())


def export_onnx(art: Artifact, path: str | Path, *, opset: int = ONNX_OPSET) -> Path:
    """Write the query network as ONNX (batch, history and dislike lengths dynamic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = query_net(art).cpu()
    names = [n for n, _ in INPUTS]
    dynamic = {n: {0: "batch", 1: f"{n.lower()}_len"} for n in names if _DIMS[n] == -1}
    dynamic[IN_FORM] = {0: "batch"}
    dynamic[OUT_QUERY] = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            _example(len(art.movie_ids)),
            str(path),
            input_names=names,
            output_names=[OUT_QUERY],
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )
    return path


def config_pbtxt(
    *,
    name: str,
    dimension: int,
    version: str,
    kind: str = "onnx",
    max_batch_size: int = DEFAULT_MAX_BATCH,
    instance_kind: str | None = None,
    instance_count: int = 1,
    max_queue_delay_us: int = 500,
) -> str:
    """The ``config.pbtxt`` text for a repository of ``kind`` "onnx" or "python"."""
    if kind not in ("onnx", "python"):
        raise ValueError(f"kind must be onnx or python, got {kind!r}")
    instance_kind = instance_kind or ("KIND_GPU" if kind == "onnx" else "KIND_CPU")
    head = 'platform: "onnxruntime_onnx"' if kind == "onnx" else 'backend: "python"'

    def tensor(n: str, dtype: str, dims: list[int]) -> str:
        return f'  {{ name: "{n}" data_type: TYPE_{dtype} dims: [ {", ".join(str(d) for d in dims)} ] }}'

    inputs = ",\n".join(tensor(n, d, [_DIMS[n]]) for n, d in INPUTS)
    outputs = tensor(OUT_QUERY, "FP32", [dimension])
    return (
        f'name: "{name}"\n'
        f"{head}\n"
        f"max_batch_size: {max_batch_size}\n"
        f"input [\n{inputs}\n]\n"
        f"output [\n{outputs}\n]\n"
        f"dynamic_batching {{ max_queue_delay_microseconds: {max_queue_delay_us} }}\n"
        f"instance_group [ {{ kind: {instance_kind} count: {instance_count} }} ]\n"
        f'parameters {{ key: "artifact_version" value: {{ string_value: "{version}" }} }}\n'
        f'parameters {{ key: "dimension" value: {{ string_value: "{dimension}" }} }}\n'
    )


PYTHON_MODEL = '''"""Triton python-backend model: the recsys query network (model.onnx) via onnxruntime.

Written by `recsys embedder export --kind python`. site_packages.txt (beside
this file) names the folder holding numpy and onnxruntime.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_SP = os.path.join(_HERE, "site_packages.txt")
if os.path.exists(_SP):
    for _p in reversed(open(_SP).read().split()):
        if _p not in sys.path:
            sys.path.insert(0, _p)

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

INPUTS = {inputs}
OUTPUT = "{output}"


class TritonPythonModel:
    def initialize(self, args):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("RECSYS_ORT_THREADS", "1"))
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            os.path.join(_HERE, "model.onnx"), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def execute(self, requests):
        responses = []
        for request in requests:
            feed = {{n: pb_utils.get_input_tensor_by_name(request, n).as_numpy() for n in INPUTS}}
            out = self.session.run([OUTPUT], feed)[0].astype(np.float32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor(OUTPUT, out)]))
        return responses
'''


def write_model_repository(
    art: Artifact,
    repo: str | Path,
    *,
    name: str = DEFAULT_MODEL_NAME,
    kind: str = "onnx",
    max_batch_size: int = DEFAULT_MAX_BATCH,
    instance_kind: str | None = None,
    instance_count: int = 1,
    site_packages: list[str] | None = None,
) -> Path:
    """Write ``<repo>/<name>/config.pbtxt`` and ``<repo>/<name>/1/model.onnx`` (+ ``model.py`` for
    ``kind="python"``); returns the model folder. An existing ``<repo>/<name>/1`` is replaced."""
    model_dir = Path(repo) / name
    version_dir = model_dir / "1"
    if version_dir.exists():
        shutil.rmtree(version_dir)
    version_dir.mkdir(parents=True)
    export_onnx(art, version_dir / "model.onnx")
    (model_dir / "config.pbtxt").write_text(
        config_pbtxt(
            name=name,
            dimension=art.dimension,
            version=art.version,
            kind=kind,
            max_batch_size=max_batch_size,
            instance_kind=instance_kind,
            instance_count=instance_count,
        )
    )
    if kind == "python":
        text = PYTHON_MODEL.format(inputs=json.dumps([n for n, _ in INPUTS]), output=OUT_QUERY)
        (version_dir / "model.py").write_text(text)
        (version_dir / "site_packages.txt").write_text("\n".join(site_packages or []) + "\n")
    return model_dir


def parse_config_pbtxt(text: str) -> dict[str, Any]:
    """A small reader for the configs written here (name, platform/backend, max_batch_size,
    tensors, instance kinds, dynamic batching, parameters) - enough for tests and checks."""
    import re

    out: dict[str, Any] = {}
    if m := re.search(r'^name:\s*"([^"]+)"', text, re.M):
        out["name"] = m.group(1)
    if m := re.search(r'^platform:\s*"([^"]+)"', text, re.M):
        out["platform"] = m.group(1)
    if m := re.search(r'^backend:\s*"([^"]+)"', text, re.M):
        out["backend"] = m.group(1)
    if m := re.search(r"^max_batch_size:\s*(\d+)", text, re.M):
        out["max_batch_size"] = int(m.group(1))
    tensor = re.compile(r'\{\s*name:\s*"([^"]+)"\s*data_type:\s*TYPE_(\w+)\s*dims:\s*\[([^\]]*)\]\s*\}')

    def block(key: str) -> list[tuple[str, str, list[int]]]:
        m = re.search(rf"^{key}\s*\[(.*?)^\]", text, re.M | re.S)
        if not m:
            return []
        return [
            (n, d, [int(x) for x in dims.replace(",", " ").split()])
            for n, d, dims in tensor.findall(m.group(1))
        ]

    out["inputs"] = block("input")
    out["outputs"] = block("output")
    out["instance_kinds"] = re.findall(r"kind:\s*(KIND_\w+)", text)
    out["dynamic_batching"] = bool(re.search(r"^dynamic_batching\s*\{", text, re.M))
    out["parameters"] = dict(
        re.findall(r'parameters\s*\{\s*key:\s*"([^"]+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"', text)
    )
    return out
