"""The two-tower step of ``recsys train`` / ``recsys evaluate`` (issue #5's demographic cold start).

Same protocol as the PinSage table: the VALIDATION numbers come from a model trained on TRAIN;
the TEST numbers (and the served model) from one refitted on TRAIN+VALIDATION, the way the
baselines are refitted. Users are treated as new: the model sees only their demographics, and
"most popular" is scored on the same users with the same exclusions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from recsys_data import Dataset, leave_last_out, load_dataset

from recsys_embedder.evaluation.two_tower import evaluate_two_tower_cold
from recsys_embedder.model.two_tower import TwoTower
from recsys_embedder.training.two_tower import train_two_tower

METRIC_KEYS = ("hr@10", "ndcg@10")
# (evaluate_two_tower_cold key prefix, table row, manifest metric prefix); "recent popular" =
# counts weighted by a 30-day half-life, the baseline the model's popularity prior is built like
ROWS = (
    ("two_tower", "two-tower (cold)", "two_tower"),
    ("popular", "popular (same users)", "popular_cold"),
    ("recent_popular", "recent popular (same users)", "recent_popular_cold"),
)


def has_demographics(ds: Dataset) -> bool:
    return any(u.gender or u.age or u.occupation for u in ds.users)


def load(source: str) -> Dataset:
    return load_dataset(source)


def train_and_evaluate(
    ds: Dataset, *, seed: int = 0, log: Callable[[str], None] = print, refit_all: bool = False
) -> tuple[TwoTower, dict[str, dict[str, dict[str, float]]]] | None:
    """Train (TRAIN, for VALIDATION), refit (TRAIN+VALIDATION, for TEST and serving), evaluate.
    With ``refit_all`` the served model is refitted once more on every event (TEST included),
    the numbers staying those of the models above.

    Returns the served model and ``{"two-tower (cold)": {"validation": {...}, "test": {...}},
    "popular (same users)": {...}, "recent popular (same users)": {...}}``, or None when the data
    set has no demographics.
    """
    if not has_demographics(ds):
        log("two-tower: the data set has no user demographics (e.g. ml-latest): skipped")
        return None
    masks = leave_last_out(ds.interactions)
    train, valid, _ = masks
    log("two-tower: training on TRAIN (for VALIDATION)")
    model = train_two_tower(ds, train, seed=seed)
    m_valid = evaluate_two_tower_cold(ds, masks, model, target="valid")
    log("two-tower: refitting on TRAIN+VALIDATION (for TEST and serving)")
    model = train_two_tower(ds, np.asarray(train) | np.asarray(valid), seed=seed)
    m_test = evaluate_two_tower_cold(ds, masks, model, target="test")
    if refit_all:
        log("two-tower: refitting on every event (the served model)")
        model = train_two_tower(ds, np.ones(len(np.asarray(train)), dtype=bool), seed=seed)
    return model, results_from(m_valid, m_test)


def evaluate(ds: Dataset, model: TwoTower) -> dict[str, dict[str, dict[str, float]]]:
    """TEST rows for a saved (TRAIN+VALIDATION) model; VALIDATION is not recomputable from it."""
    masks = leave_last_out(ds.interactions)
    return results_from(None, evaluate_two_tower_cold(ds, masks, model, target="test"))


def results_from(
    valid: dict[str, float] | None, test: dict[str, float]
) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key, name, _ in ROWS:
        if f"{key}/hr@10" not in test:  # no user with demographics
            continue
        out[name] = {
            "validation": {m: float(valid[f"{key}/{m}"]) for m in METRIC_KEYS} if valid else {},
            "test": {m: float(test[f"{key}/{m}"]) for m in METRIC_KEYS},
            "users": {"test": float(test.get("users", 0))},
        }
    return out


def manifest_metrics(results: dict[str, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Flat metrics for ModelInfo, e.g. ``two_tower/test/hr@10``."""
    flat: dict[str, Any] = {}
    for _, name, key in ROWS:
        for phase in ("validation", "test"):
            for m, v in results.get(name, {}).get(phase, {}).items():
                flat[f"{key}/{phase}/{m}"] = v
    return flat
