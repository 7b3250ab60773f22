"""Artifact version -> a loaded, warmed-up model on the configured backend.

Built on the training engineer's ``recsys_embedder.artifacts.load_artifact``;
this module only adapts it (meta from the manifest, the two-tower section,
the query network on the chosen backend) and checks the result with a probe
query before the service switches to it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from recsys_core.errors import DependencyUnavailable, FailedPrecondition, NotFound

from recsys_embedder.artifacts import (
    LATEST,
    MANIFEST,
    Artifact,
    ArtifactError,
    load_artifact,
    load_two_tower,
    resolve,
)
from recsys_embedder.backends.base import (
    USER_FORMS,
    ModelMeta,
    NewMovie,
    QueryInput,
    TwoTowerServing,
    pad_batch,
)
from recsys_embedder.backends.querynet import QueryNet
from recsys_embedder.backends.torch_backend import ArtifactModel, TorchQueryBackend, pick_device
from recsys_embedder.signals import HistoryRule

log = logging.getLogger(__name__)


def model_meta(art: Artifact) -> ModelMeta:
    m = art.manifest
    section = m.get("models", {}).get("pinsage", {})
    cfg = section.get("model_config", {})
    trained_at = None
    for key in ("trained_at", "created_at", "finished_at"):
        raw = m.get(key) or section.get(key)
        if isinstance(raw, str):
            try:
                trained_at = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
                break
            except ValueError:
                continue
    ds = m.get("dataset", "")
    dataset = str(ds.get("name", "")) if isinstance(ds, dict) else str(ds)
    try:
        form = art.default_form
    except KeyError:
        form = "pinsage"
    metrics: dict[str, float] = {}
    for k, v in (m.get("metrics") or {}).items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            metrics[str(k)] = float(v)
    tt = two_tower_section(m)
    if tt:
        for k, v in (tt.get("metrics") or {}).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                metrics[f"two_tower/{k}" if not str(k).startswith("two_tower") else str(k)] = float(v)
    return ModelMeta(
        version=art.version,
        dimension=art.dimension,
        metric="IP",
        metrics=metrics,
        trained_at=trained_at,
        dataset=dataset,
        default_form=form if form in USER_FORMS else "pinsage",
        user_window=int(cfg.get("user_window", 50)),
        dislike_weight=float(cfg.get("dislike_weight", 0.5)),
        history_rule=HistoryRule.from_json(section.get("serving", {}).get("history_rule")),
    )


def two_tower_section(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The two-tower manifest section: ``models.two_tower`` or top-level ``two_tower``."""
    sec = manifest.get("models", {}).get("two_tower") or manifest.get("two_tower")
    return sec if isinstance(sec, dict) else None


def load_two_tower_serving(folder: Path, manifest: dict[str, Any]) -> TwoTowerServing | None:
    section = two_tower_section(manifest)
    if section is None:
        if not (folder / "two_tower" / "two_tower.json").is_file():
            return None
    tt = load_two_tower(folder, section)
    items = np.load(
        folder / (section or {}).get("files", {}).get("item_embeddings", "two_tower/item_embeddings.npy")
    )
    ids = np.asarray(tt.movie_ids, np.int64)
    order = np.argsort(ids, kind="stable")
    return TwoTowerServing(
        dimension=tt.dim,
        movie_ids=ids[order],
        item_vectors=np.ascontiguousarray(items[order], dtype=np.float32),
        user_table=tt.demographic_table(),
        occupations=tt.config.occupations,
    )


class ArtifactLoader:
    """``ModelLoader`` over an artifact directory (a root with ``latest``, or one version folder)."""

    def __init__(
        self,
        artifact_dir: str | Path,
        *,
        backend: str = "torch",
        device: str = "auto",
        triton_url: str = "127.0.0.1:8001",
        triton_model_name: str = "recsys_query",
        triton_timeout_s: float = 10.0,
        triton_fallback: bool = True,
        triton_check_interval_s: float = 5.0,
    ) -> None:
        self.artifact_dir = Path(artifact_dir)
        self.backend = backend
        self.device_setting = device
        self.triton_url = triton_url
        self.triton_model_name = triton_model_name
        self.triton_timeout_s = triton_timeout_s
        self.triton_fallback = triton_fallback
        self.triton_check_interval_s = triton_check_interval_s

    def latest_version(self) -> str | None:
        try:
            return resolve(self.artifact_dir).name
        except (ArtifactError, OSError):
            return None

    def _load_sync(self, version: str) -> tuple[Artifact, TwoTowerServing | None, torch.device]:
        device = pick_device(self.device_setting) if self.backend == "torch" else torch.device("cpu")
        if version:
            if "/" in version or version.startswith(".") or version == LATEST:
                raise NotFound(f"artifact version {version!r} is not a version name")
            root = self.artifact_dir
            if (root / MANIFEST).is_file():  # a version folder itself: look beside it
                root = root.parent
            if not (root / version).is_dir():
                raise NotFound(f"artifact version {version!r} not found in {root}")
            path: Path = root / version
        else:
            path = self.artifact_dir
        try:
            art = load_artifact(path, None, device="cpu")
            two_tower = load_two_tower_serving(art.path, art.manifest)
        except ArtifactError as exc:
            raise FailedPrecondition(f"artifact refused: {exc}") from exc
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise FailedPrecondition(f"artifact refused: {type(exc).__name__}: {exc}") from exc
        return art, two_tower, device

    async def load(self, version: str) -> ArtifactModel:
        art, two_tower, device = await asyncio.to_thread(self._load_sync, version)
        meta = model_meta(art)
        net = QueryNet(art.model, torch.from_numpy(np.ascontiguousarray(art.item_embeddings)))
        reference = TorchQueryBackend(net, device)
        backend: Any = reference
        if self.backend == "triton":
            from recsys_embedder.backends.triton_backend import TritonQueryBackend

            backend = TritonQueryBackend(
                self.triton_url, self.triton_model_name, timeout_s=self.triton_timeout_s
            )
            try:
                await backend.check(meta.version, meta.dimension)
            except BaseException:
                await backend.close()
                raise
        elif self.backend != "torch":
            raise FailedPrecondition(f"unknown backend {self.backend!r} (torch or triton)")
        model = ArtifactModel(art, meta, backend, device, two_tower)
        try:
            await warm_up(model, reference)
        except BaseException:
            await model.close()
            raise
        if backend is not reference:
            if self.triton_fallback:
                from recsys_embedder.backends.fallback import FallbackQueryBackend

                fb = FallbackQueryBackend(
                    backend,
                    reference,
                    version=meta.version,
                    dimension=meta.dimension,
                    check_interval_s=self.triton_check_interval_s,
                )
                model.backend = fb
                fb.start()
            else:
                await reference.close()
        return model


async def warm_up(model: ArtifactModel, reference: TorchQueryBackend) -> None:
    """Probe queries (every form, with dislikes) and one new movie; on Triton the answer must match
    the in-process network (else the served model is not this artifact)."""
    n = len(model.movie_ids)
    rows = np.arange(min(n, 5), dtype=np.int64)
    probes = [
        QueryInput(rows, np.full(len(rows), 4.0, np.float32), rows[-1:] if n > 5 else rows[:0], f)
        for f in range(len(USER_FORMS))
    ]
    batch = pad_batch(probes)
    got = await model.backend.embed_queries(batch)
    if got.shape != (len(probes), model.meta.dimension) or not np.all(np.isfinite(got)):
        raise FailedPrecondition(f"probe query gave shape {got.shape} or non-finite values")
    if model.backend is not reference:
        want = reference.run(batch)
        err = float(np.abs(got - want).max())
        if err > 1e-4:
            raise DependencyUnavailable(
                "triton", f"the served model disagrees with artifact {model.meta.version} (max |Δ| {err:.2e})"
            )
    vec = await model.embed_new_movies([NewMovie("Probe", 2000, model.genres[:1], rows[:2])])
    if not np.all(np.isfinite(vec)):
        raise FailedPrecondition("probe new-movie embedding is not finite")
    log.info("model %s warmed up on %s", model.meta.version, model.backend.name)
