"""Embedder settings (environment prefix ``RECSYS_EMBEDDER_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from recsys_core.settings import ServerSettings, SettingsConfigDict


class EmbedderSettings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="RECSYS_EMBEDDER_", extra="forbid")

    #: the port `recsys up` and the gateway's default embedder_target use
    port: int = Field(default=50053, ge=0, le=65535)

    #: artifact root (versions + ``latest``) or one version folder
    artifact_dir: str = "./artifacts"
    #: version to load at start; empty = the latest
    artifact_version: str = ""
    #: where the query network runs
    backend: Literal["torch", "triton"] = "torch"
    #: torch device: "auto" = CUDA when present, else CPU
    device: Literal["auto", "cpu", "cuda"] = "auto"
    triton_url: str = "127.0.0.1:8001"
    triton_model_name: str = "recsys_query"
    triton_timeout_s: float = Field(default=10.0, gt=0)
    #: while Triton is unavailable, answer on the in-process CPU copy of the same artifact
    #: (gauge recsys_embedder_backend_fallback; backends/fallback.py); false = UNAVAILABLE instead
    triton_fallback: bool = True
    #: how often Triton is checked (back? still serving this artifact?); 0 = only calls notice
    triton_check_interval_s: float = Field(default=5.0, ge=0)
    #: micro-batching: most signals per forward pass. Signals arriving while a batch runs
    #: form the next one; ``batch_max_wait_ms`` > 0 also holds a batch open that long after
    #: its first signal (bigger batches on a fast GPU, at that much added latency)
    batch_max_size: int = Field(default=64, ge=1, le=1024)
    batch_max_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    #: signals waiting beyond this are RESOURCE_EXHAUSTED
    batch_max_queue: int = Field(default=4096, ge=1)
    #: batches in flight at once (1 for an in-process device; 2-4 keep Triton busy)
    batch_max_concurrency: int = Field(default=1, ge=1, le=64)
    #: most recent history events a query uses (the rest are ignored)
    max_history: int = Field(default=2000, ge=1, le=10_000)
    #: poll the artifact dir for a new ``latest`` every N seconds; 0 = no file watch
    watch_interval_s: float = Field(default=0.0, ge=0)
