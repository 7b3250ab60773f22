"""The query network on a Triton Inference Server (tritonclient grpc.aio).

The server runs the ONNX export of :class:`~recsys_embedder.backends.querynet.QueryNet`
(``recsys embedder export``). The model's ``config.pbtxt`` carries the artifact
version in ``parameters { key: "artifact_version" }``; :meth:`check` refuses a
Triton model exported from another version (its item table would not match).
Triton errors become ``DependencyUnavailable("triton", ...)`` (UNAVAILABLE).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from recsys_core.errors import DependencyUnavailable, FailedPrecondition

from recsys_embedder.backends.base import INPUTS, OUT_QUERY, QueryBatch

VERSION_PARAMETER = "artifact_version"


class TritonQueryBackend:
    name = "triton"

    def __init__(self, url: str, model_name: str, *, timeout_s: float = 10.0, max_batch: int = 256) -> None:
        import tritonclient.grpc.aio as grpcclient  # the only importer of tritonclient

        self._mod: Any = grpcclient
        self._client: Any = grpcclient.InferenceServerClient(url)
        self.url = url
        self.model_name = model_name
        self.timeout_s = timeout_s
        self.max_batch = max_batch

    async def check(self, expected_version: str, dimension: int) -> None:
        """The server is ready, serves ``model_name`` exported from ``expected_version``."""
        from tritonclient.utils import InferenceServerException

        try:
            if not await self._client.is_model_ready(self.model_name, client_timeout=self.timeout_s):
                raise DependencyUnavailable("triton", f"model {self.model_name!r} not ready at {self.url}")
            cfg = await self._client.get_model_config(
                self.model_name, as_json=True, client_timeout=self.timeout_s
            )
        except InferenceServerException as exc:
            raise DependencyUnavailable("triton", f"{self.url}: {exc.message()}") from exc
        config = cfg.get("config", cfg)
        params = config.get("parameters", {})
        served = params.get(VERSION_PARAMETER, {}).get("string_value", "")
        if served != expected_version:
            raise FailedPrecondition(
                f"triton model {self.model_name!r} was exported from artifact {served or '?'}, not "
                f"{expected_version}: run `recsys embedder export` for it and load it into Triton"
            )
        mb = int(config.get("max_batch_size", 0) or 0)
        if mb > 0:
            self.max_batch = min(self.max_batch, mb)
        dims = [o.get("dims") for o in config.get("output", []) if o.get("name") == OUT_QUERY]
        if dims and dims[0] and int(dims[0][-1]) != dimension:
            raise FailedPrecondition(
                f"triton output {OUT_QUERY} has dims {dims[0]}, artifact dim {dimension}"
            )

    async def _infer(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        from tritonclient.utils import InferenceServerException

        g = self._mod
        inputs = []
        for name, dtype in INPUTS:
            a = np.ascontiguousarray(arrays[name])
            inp = g.InferInput(name, list(a.shape), dtype)
            inp.set_data_from_numpy(a)
            inputs.append(inp)
        try:
            res = await self._client.infer(
                self.model_name,
                inputs,
                outputs=[g.InferRequestedOutput(OUT_QUERY)],
                client_timeout=self.timeout_s,
            )
        except InferenceServerException as exc:
            raise DependencyUnavailable("triton", exc.message() or str(exc)) from exc
        out = res.as_numpy(OUT_QUERY)
        if out is None:
            raise DependencyUnavailable("triton", f"no {OUT_QUERY} in the response")
        return np.asarray(out, dtype=np.float32)

    async def embed_queries(self, batch: QueryBatch) -> np.ndarray:
        arrays = batch.arrays()
        n = len(batch)
        if n <= self.max_batch:
            return await self._infer(arrays)
        parts = [
            await self._infer({k: v[s : s + self.max_batch] for k, v in arrays.items()})
            for s in range(0, n, self.max_batch)
        ]
        return np.concatenate(parts, axis=0)

    async def close(self) -> None:
        await self._client.close()
