"""Versioned model artifacts: save after training, load for serving and evaluation.

Layout of ``<root>/<version>/`` (version like ``20261123T101500Z-ml-100k``);
``<root>/latest`` is a text file holding the newest version's name, replaced
atomically after the folder is complete. No pickles: arrays are ``.npy``
(loaded with ``allow_pickle=False``), weights a torch ``state_dict`` of tensors
only (loaded with ``weights_only=True``), metadata ``manifest.json``.

=========================  ==================================================
``manifest.json``          data set (name, sha256), split, hyperparameters,
                           metrics (VALIDATION and TEST, every user form and
                           baseline), package versions, git revision, seed,
                           training time, the default user form
``pinsage.pt``             ``PinSageNet`` state_dict
``item_embeddings.npy``    float32 ``(n, dim)``, L2-normalised (metric: IP)
``movie_ids.npy``          int64 ``(n,)``: row -> movie id
``neighbour_ids.npy``      int64 ``(n, T)``: each movie's neighbours as ROWS
``neighbour_weights.npy``  float32 ``(n, T)``: visit counts, 0 = padding
``item_dense.npy``         float32 ``(n, F)``: dense item features
``item_title_tokens.npy``  int64 ``(n, L)``: hashed title words, 0 = padding
=========================  ==================================================

The manifest keeps each model under ``models.<name>`` with its own ``files``
map, so the ``two_tower`` section (and its files) is added to the same folder
without touching the PinSage part.

Two-tower layout (``<artifact>/two_tower/``, :func:`save_two_tower` / :func:`load_two_tower`):
``weights.pt`` (a state dict, loaded with ``weights_only=True``), ``item_embeddings.npy``
(float32, L2-normalised, row order of ``movie_ids.npy``; the served vectors, prior included),
``movie_ids.npy``, ``user_ids.npy``, ``item_features.npy``, ``item_tokens.npy``,
``item_prior.npy`` (with a prior only) and ``two_tower.json`` (the manifest section, so the
folder loads on its own; the training CLI merges the same dict into ``manifest.json`` under
``"two_tower"``).

Serving API (no DGL, no training)::

    art = load_artifact("artifacts")            # root (follows `latest`), or a version folder
    art.item_embeddings, art.movie_ids          # vectors and ids for the vector store
    vec, unknown = art.embed_user([1, 50], ratings=[5, 4], timestamps=[10, 20], disliked_ids=[7])
    vec, unknown = art.embed_new_movie("Brand New (2026)", 2026, ["Drama"], neighbour_movie_ids=[1, 2])
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys_embedder.model.features import FeatureSpec, movie_features
from recsys_embedder.model.pinsage import USER_FORMS, ModelConfig, PinSageNet
from recsys_embedder.model.two_tower import TwoTower, TwoTowerConfig, TwoTowerNet
from recsys_embedder.signals import HistoryRule, effective_ratings

FORMAT_VERSION = 1
LATEST = "latest"
MANIFEST = "manifest.json"
PINSAGE_FILES: dict[str, str] = {
    "weights": "pinsage.pt",
    "item_embeddings": "item_embeddings.npy",
    "movie_ids": "movie_ids.npy",
    "neighbour_ids": "neighbour_ids.npy",
    "neighbour_weights": "neighbour_weights.npy",
    "item_dense": "item_dense.npy",
    "item_title_tokens": "item_title_tokens.npy",
}
# The two-tower model (``models.two_tower``): its own folder and section (see :func:`save_two_tower`).
TWO_TOWER_DIR = "two_tower"
TWO_TOWER_FILES = {
    "item_embeddings": f"{TWO_TOWER_DIR}/item_embeddings.npy",
    "movie_ids": f"{TWO_TOWER_DIR}/movie_ids.npy",
    "user_ids": f"{TWO_TOWER_DIR}/user_ids.npy",
    "item_features": f"{TWO_TOWER_DIR}/item_features.npy",
    "item_tokens": f"{TWO_TOWER_DIR}/item_tokens.npy",
    "weights": f"{TWO_TOWER_DIR}/weights.pt",
}
TWO_TOWER_PRIOR_FILE = f"{TWO_TOWER_DIR}/item_prior.npy"  # present when the model has a popularity prior
TWO_TOWER_SECTION_FILE = f"{TWO_TOWER_DIR}/two_tower.json"
TWO_TOWER_FORMAT_VERSION = 1


class ArtifactError(RuntimeError):
    """A missing, incomplete or inconsistent artifact."""


def new_version(dataset: str, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in dataset)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{safe}"


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for dist in ("torch", "dgl", "numpy", "recsys-embedder", "recsys-core"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def git_revision() -> str:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=here, timeout=10).returncode != 0
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class PinSageArrays:
    """Everything of the PinSage model that goes to disk besides the manifest."""

    state_dict: dict[str, torch.Tensor]
    item_embeddings: np.ndarray
    movie_ids: np.ndarray
    neighbour_ids: np.ndarray
    neighbour_weights: np.ndarray
    item_dense: np.ndarray
    item_title_tokens: np.ndarray


def save_artifact(
    root: str | Path, version: str, arrays: PinSageArrays, manifest: dict[str, Any], *, latest: bool = True
) -> Path:
    """Write ``<root>/<version>/`` (via a temporary folder, renamed) and then ``<root>/latest``.

    ``latest=False`` leaves the pointer alone, so more models can be added to the folder
    (:func:`update_manifest`) before :func:`write_latest` publishes it.

    ``manifest`` gets ``format_version``, ``version`` and the PinSage ``files``
    map filled in. Returns the version folder.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    if final.exists():
        raise ArtifactError(f"{final} exists already")
    tmp = root / f".{version}.partial"
    tmp.mkdir()
    emb = np.ascontiguousarray(arrays.item_embeddings, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1)
    if emb.shape[0] != len(arrays.movie_ids) or not np.allclose(norms, 1.0, atol=1e-4):
        raise ArtifactError("item embeddings must be L2-normalised, one row per movie id")
    torch.save(
        {k: v.detach().cpu().contiguous() for k, v in arrays.state_dict.items()},
        tmp / PINSAGE_FILES["weights"],
    )
    np.save(tmp / PINSAGE_FILES["item_embeddings"], emb)
    np.save(tmp / PINSAGE_FILES["movie_ids"], np.asarray(arrays.movie_ids, dtype=np.int64))
    np.save(tmp / PINSAGE_FILES["neighbour_ids"], np.asarray(arrays.neighbour_ids, dtype=np.int64))
    np.save(tmp / PINSAGE_FILES["neighbour_weights"], np.asarray(arrays.neighbour_weights, dtype=np.float32))
    np.save(tmp / PINSAGE_FILES["item_dense"], np.asarray(arrays.item_dense, dtype=np.float32))
    np.save(tmp / PINSAGE_FILES["item_title_tokens"], np.asarray(arrays.item_title_tokens, dtype=np.int64))
    manifest = dict(manifest)
    manifest["format_version"] = FORMAT_VERSION
    manifest["version"] = version
    manifest.setdefault("models", {}).setdefault("pinsage", {})["files"] = dict(PINSAGE_FILES)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, final)
    if latest:
        write_latest(root, version)
    return final


def update_manifest(folder: str | Path, update: dict[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into ``<folder>/manifest.json`` (top-level keys; ``models`` merged per
    model), written atomically. Returns the new manifest."""
    path = Path(folder) / MANIFEST
    manifest = json.loads(path.read_text())
    for key, value in update.items():
        if key in ("models", "metrics") and isinstance(value, dict):
            manifest.setdefault(key, {}).update(value)
        else:
            manifest[key] = value
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return manifest


def write_latest(root: Path, version: str) -> None:
    tmp = root / f".{LATEST}.tmp"
    tmp.write_text(version + "\n")
    os.replace(tmp, root / LATEST)


def resolve(path: str | Path, version: str | None = None) -> Path:
    """A version folder from: a version folder, a root (its ``latest``), or a ``latest`` file."""
    p = Path(path)
    if version:
        p = p / version
    if p.is_file() and p.name == LATEST:
        p = p.parent / p.read_text().strip()
    elif (p / LATEST).is_file() and not (p / MANIFEST).exists():
        p = p / (p / LATEST).read_text().strip()
    if not (p / MANIFEST).is_file():
        raise ArtifactError(f"no artifact at {path} (no {MANIFEST})")
    return p


@dataclass
class Artifact:
    """A loaded PinSage artifact: the torch module and every table serving needs."""

    path: Path
    manifest: dict[str, Any]
    model: PinSageNet
    feature_spec: FeatureSpec
    item_embeddings: np.ndarray
    movie_ids: np.ndarray
    neighbour_ids: np.ndarray
    neighbour_weights: np.ndarray
    item_dense: np.ndarray
    item_title_tokens: np.ndarray
    _row: dict[int, int] = field(default_factory=dict, repr=False)
    _states: list[torch.Tensor] | None = field(default=None, repr=False)

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def dimension(self) -> int:
        return int(self.item_embeddings.shape[1])

    @property
    def default_form(self) -> str:
        return str(self.manifest["models"]["pinsage"]["default_form"])

    @property
    def history_rule(self) -> HistoryRule:
        """How low ratings enter a user vector (``signals.py``); ``history`` when the manifest has none."""
        serving = self.manifest["models"]["pinsage"].get("serving", {})
        return HistoryRule.from_json(serving.get("history_rule"))

    @property
    def metrics(self) -> dict[str, float]:
        """Flat offline metrics of the default form, e.g. ``{"test/hr@10": 0.17}``."""
        return {str(k): float(v) for k, v in self.manifest.get("metrics", {}).items()}

    def rows(self, movie_ids: Sequence[int]) -> tuple[np.ndarray, list[int]]:
        """Rows of known ids (in order) and the unknown ids."""
        if not self._row:
            self._row = {int(m): r for r, m in enumerate(self.movie_ids)}
        rows = [self._row.get(int(m), -1) for m in movie_ids]
        return np.array([r for r in rows if r >= 0], dtype=np.int64), [
            int(m) for m, r in zip(movie_ids, rows, strict=True) if r < 0
        ]

    def embed_user(
        self,
        movie_ids: Sequence[int],
        ratings: Sequence[float] | None = None,
        timestamps: Sequence[int] | None = None,
        disliked_ids: Sequence[int] = (),
        form: str | None = None,
    ) -> tuple[np.ndarray, list[int]]:
        """Query vector (float32, L2-normalised; zeros when nothing is known) and unknown ids.

        Missing ratings count as 4 stars; missing timestamps keep the given order; low ratings
        follow the artifact's :attr:`history_rule` (as serving does).
        """
        form = form or self.default_form
        if form not in USER_FORMS:
            raise ValueError(f"unknown user form {form!r}; expected one of {USER_FORMS}")
        n = len(movie_ids)
        rat = effective_ratings(np.full(n, 0.0) if ratings is None else ratings)
        ts = np.arange(n, dtype=np.int64) if timestamps is None else np.asarray(timestamps, np.int64)
        keep_h, to_dislike = self.history_rule.split(rat)
        disliked_ids = [*disliked_ids, *(int(m) for m, d in zip(movie_ids, to_dislike, strict=True) if d)]
        movie_ids = [m for m, k in zip(movie_ids, keep_h, strict=True) if k]
        rat, ts = rat[keep_h], ts[keep_h]
        known = {int(m): k for k, m in enumerate(movie_ids)}
        rows, unknown = self.rows(list(known))
        keep = [known[int(self.movie_ids[r])] for r in rows]
        drows, dunknown = self.rows(disliked_ids)
        emb = torch.from_numpy(self.item_embeddings)
        with torch.no_grad():
            vec = self.model.embed_user(
                emb,
                torch.from_numpy(rows),
                torch.from_numpy(rat[keep]),
                torch.from_numpy(ts[keep]),
                torch.from_numpy(drows),
                form,
            )
        return vec.numpy().astype(np.float32), unknown + dunknown

    def item_states(self) -> list[torch.Tensor]:
        """Per-layer representations of the known movies (cached), for new-movie embedding."""
        if self._states is None:
            with torch.no_grad():
                self._states = self.model.item_states(
                    torch.from_numpy(self.item_dense),
                    torch.from_numpy(self.item_title_tokens),
                    torch.from_numpy(self.neighbour_ids),
                    torch.from_numpy(self.neighbour_weights),
                )
        return self._states

    def embed_new_movie(
        self, title: str, year: int | None, genres: Sequence[str], neighbour_movie_ids: Sequence[int] = ()
    ) -> tuple[np.ndarray, list[int]]:
        """Inductive vector of a movie unseen in training (features + known neighbours, weight 1 each)."""
        rows, unknown = self.rows(neighbour_movie_ids)
        dense, tokens = movie_features(self.feature_spec, [title], [year or None], [tuple(genres)], [0])
        t = max(len(rows), 1)
        ids = torch.zeros(1, t, dtype=torch.int64)
        w = torch.zeros(1, t, dtype=torch.float32)
        if len(rows):
            ids[0, : len(rows)] = torch.from_numpy(rows)
            w[0, : len(rows)] = 1.0
        with torch.no_grad():
            vec = self.model.embed_new_items(
                torch.from_numpy(dense), torch.from_numpy(tokens), ids, w, self.item_states()
            )[0]
        return vec.numpy().astype(np.float32), unknown


def _npy(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def load_artifact(path: str | Path, version: str | None = None, device: str = "cpu") -> Artifact:
    """Load and check an artifact (see :func:`resolve` for ``path``). Raises :class:`ArtifactError`."""
    folder = resolve(path, version)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        if int(manifest.get("format_version", 0)) != FORMAT_VERSION:
            raise ArtifactError(f"{folder}: unsupported format_version {manifest.get('format_version')}")
        section = manifest["models"]["pinsage"]
        files = section["files"]
        cfg = ModelConfig.from_json(section["model_config"])
        spec = FeatureSpec.from_json(section["feature_spec"])
        model = PinSageNet(cfg)
        state = torch.load(folder / files["weights"], weights_only=True, map_location=device)
        model.load_state_dict(state)
        model.to(device).eval()
        art = Artifact(
            path=folder,
            manifest=manifest,
            model=model,
            feature_spec=spec,
            item_embeddings=_npy(folder / files["item_embeddings"]).astype(np.float32, copy=False),
            movie_ids=_npy(folder / files["movie_ids"]),
            neighbour_ids=_npy(folder / files["neighbour_ids"]),
            neighbour_weights=_npy(folder / files["neighbour_weights"]),
            item_dense=_npy(folder / files["item_dense"]),
            item_title_tokens=_npy(folder / files["item_title_tokens"]),
        )
    except (KeyError, ValueError, OSError, RuntimeError) as exc:
        if isinstance(exc, ArtifactError):
            raise
        raise ArtifactError(f"{folder}: broken artifact ({exc})") from exc
    n = len(art.movie_ids)
    if art.item_embeddings.shape != (n, cfg.dim) or art.neighbour_ids.shape[0] != n or cfg.n_items != n:
        raise ArtifactError(f"{folder}: inconsistent shapes")
    return art


# ---- the two-tower model ---------------------------------------------------------------------


def save_two_tower(model: TwoTower, artifact_dir: str | Path) -> dict[str, Any]:
    """Write ``<artifact_dir>/two_tower/`` and return the manifest section (also written there)."""
    root = Path(artifact_dir)
    (root / TWO_TOWER_DIR).mkdir(parents=True, exist_ok=True)
    np.save(root / TWO_TOWER_FILES["item_embeddings"], model.item_embeddings())
    np.save(root / TWO_TOWER_FILES["movie_ids"], model.movie_ids.astype(np.int64))
    np.save(root / TWO_TOWER_FILES["user_ids"], model.user_ids.astype(np.int64))
    np.save(root / TWO_TOWER_FILES["item_features"], model.item_features.astype(np.float32))
    np.save(root / TWO_TOWER_FILES["item_tokens"], model.item_tokens.astype(np.int64))
    torch.save(model.net.state_dict(), root / TWO_TOWER_FILES["weights"])
    files = dict(TWO_TOWER_FILES)
    prior: dict[str, Any] | None = None
    if model.item_prior is not None:
        np.save(root / TWO_TOWER_PRIOR_FILE, model.item_prior.astype(np.float32))
        files["item_prior"] = TWO_TOWER_PRIOR_FILE
        prior = {
            "weight": model.prior_weight,
            "half_life_days": model.train_info.get("prior_half_life_days"),
            "position_half_life": model.train_info.get("prior_position_half_life"),
            "item_vector": "[m, p, sqrt(1 - p^2)] / sqrt(2)",
            "user_vector": "[u, weight, 0] / sqrt(1 + weight^2)",
        }
    section: dict[str, Any] = {
        "format_version": TWO_TOWER_FORMAT_VERSION,
        "dimension": model.dim,
        "tower_dimension": model.config.dim,
        "metric": "IP",
        "score": "rating_min + (rating_max - rating_min) * (cos + 1) / 2",
        "ranking": "cos + prior.weight * prior" if prior is not None else "cos",
        "prior": prior,
        "config": model.config.to_json(),
        "files": files,
        "movie_count": len(model.movie_ids),
        "metrics": dict(model.metrics),
        "train": dict(model.train_info),
    }
    (root / TWO_TOWER_SECTION_FILE).write_text(json.dumps(section, indent=2, sort_keys=True))
    return section


def load_two_tower(artifact_dir: str | Path, section: dict[str, Any] | None = None) -> TwoTower:
    """Load ``<artifact_dir>/two_tower/`` (``section``: the manifest's ``"two_tower"`` dict,
    read from ``two_tower/two_tower.json`` when not given). Raises ``ValueError`` when the
    files do not agree with each other."""
    root = Path(artifact_dir)
    if section is None:
        section = json.loads((root / TWO_TOWER_SECTION_FILE).read_text())
    files = {**TWO_TOWER_FILES, **section.get("files", {})}
    cfg = TwoTowerConfig.from_json(section["config"])
    net = TwoTowerNet(cfg)
    state = torch.load(root / files["weights"], map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()
    movie_ids = np.load(root / files["movie_ids"])
    prior_section = section.get("prior")
    item_prior = None
    if isinstance(prior_section, dict) and "item_prior" in files:
        item_prior = np.load(root / files["item_prior"]).astype(np.float32)
        if item_prior.shape != (cfg.n_items,):
            raise ValueError(
                f"{root / TWO_TOWER_DIR}: item_prior does not match the config ({cfg.n_items} movies)"
            )
    model = TwoTower(
        item_prior=item_prior,
        prior_weight=float(prior_section["weight"]) if item_prior is not None else 0.0,  # type: ignore[index]
        net=net,
        movie_ids=movie_ids,
        user_ids=np.load(root / files["user_ids"]),
        item_features=np.load(root / files["item_features"]),
        item_tokens=np.load(root / files["item_tokens"]),
        metrics=dict(section.get("metrics", {})),
        train_info=dict(section.get("train", {})),
    )
    if len(movie_ids) != cfg.n_items or model.item_features.shape != (
        cfg.n_items,
        cfg.feature_dim or len(cfg.genres),
    ):
        raise ValueError(f"{root / TWO_TOWER_DIR}: item files do not match the config ({cfg.n_items} movies)")
    return model
