"""backends/fallback.py with stand-ins for Triton and the in-process network (the real thing:
tests/integration/embedder/test_triton_fallback.py, which needs pytriton's tritonserver)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from recsys_core.errors import DependencyUnavailable, FailedPrecondition
from recsys_embedder.backends.base import QueryInput, pad_batch
from recsys_embedder.backends.fallback import FallbackQueryBackend

BATCH = pad_batch([QueryInput(np.arange(3), np.ones(3, np.float32), np.arange(0), 0)])


class Triton:
    name = "triton"

    def __init__(self) -> None:
        self.down = False
        self.serves = "v1"
        self.calls = 0

    async def check(self, version: str, dimension: int) -> None:
        if self.down:
            raise DependencyUnavailable("triton", "connection refused")
        if self.serves != version:
            raise FailedPrecondition(f"triton model was exported from artifact {self.serves}")

    async def embed_queries(self, batch: Any) -> np.ndarray:
        self.calls += 1
        if self.down:
            raise DependencyUnavailable("triton", "connection refused")
        return np.full((len(batch), 2), 1.0, np.float32)

    async def close(self) -> None:
        pass


class Cpu:
    name = "torch-cpu"

    def __init__(self) -> None:
        self.calls = 0

    async def embed_queries(self, batch: Any) -> np.ndarray:
        self.calls += 1
        return np.full((len(batch), 2), 2.0, np.float32)

    async def close(self) -> None:
        pass


def gauge(version: str = "v1") -> float | None:
    return REGISTRY.get_sample_value("recsys_embedder_backend_fallback", {"model_version": version})


async def _until(cond: Any) -> None:
    for _ in range(200):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_switches_on_failure_and_back_when_triton_returns(caplog: pytest.LogCaptureFixture) -> None:
    triton, cpu = Triton(), Cpu()
    fb = FallbackQueryBackend(triton, cpu, version="v1", dimension=2, check_interval_s=0.02)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="recsys_embedder.backends.fallback")
    fb.start()
    try:
        assert (await fb.embed_queries(BATCH))[0, 0] == 1.0
        assert (fb.name, gauge()) == ("triton", 0.0)
        triton.down = True
        for _ in range(5):  # the failed call is answered on CPU, and so are the next ones
            assert (await fb.embed_queries(BATCH))[0, 0] == 2.0
        assert (fb.name, gauge()) == ("torch-cpu (triton fallback)", 1.0)
        assert triton.calls == 2  # one success, one failure: no Triton call while on CPU
        triton.down = False
        await _until(lambda: not fb.on_fallback)
        assert (await fb.embed_queries(BATCH))[0, 0] == 1.0
        assert (fb.name, gauge()) == ("triton", 0.0)
    finally:
        await fb.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "recsys_embedder.backends.fallback"]
    assert len(lines) == 2 and "unavailable" in lines[0] and "back" in lines[1], lines
    assert gauge() is None  # the closed model's series is gone


async def test_triton_serving_another_artifact_sends_calls_to_cpu() -> None:
    """After a triton-load of a newer export, this pod's (older) model answers on CPU until it is
    switched, instead of taking query vectors from another model."""
    triton, cpu = Triton(), Cpu()
    fb = FallbackQueryBackend(triton, cpu, version="v1", dimension=2, check_interval_s=0.02)  # type: ignore[arg-type]
    fb.start()
    try:
        triton.serves = "v2"
        await _until(lambda: fb.on_fallback)
        assert (await fb.embed_queries(BATCH))[0, 0] == 2.0
        triton.serves = "v1"
        await _until(lambda: not fb.on_fallback)
    finally:
        await fb.close()
