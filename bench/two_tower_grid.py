"""Reproduce the two-tower model choice (issue #5): a grid on the extended VALIDATION, then TEST.

    OMP_NUM_THREADS=1 .venv/bin/python bench/two_tower_grid.py            # the README's grid (~25 min)
    OMP_NUM_THREADS=1 .venv/bin/python bench/two_tower_grid.py --variants pos10xtime60 --seeds 0 \\
        --test-seeds 0                                                      # one variant, ~3 min
    OMP_NUM_THREADS=1 .venv/bin/python bench/two_tower_grid.py --chosen pos10xtime60/time:30.0:0.25
                                                                            # TEST only, ~2 min

Training weightings (``--variants``) × seeds × the 4 extended VALIDATION folds
(``extended_validation_masks``: each user's 2nd..5th last event, trained on the events before
it) are trained once each; the popularity prior does not change training, so every prior
(time or position half-life × weight, folded into the served vectors exactly as served) is
scored on the same towers. Rule (fixed before TEST is looked at): highest mean HR@10 over folds
× seeds, mean NDCG@10 breaking ties. Then the chosen setting is refitted on TRAIN+VALIDATION
for each ``--test-seeds`` seed and scored on TEST against "most popular" and "recent popular"
(users treated as new: demographics only). Prints numbers; never a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

SHARED_ML100K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "movielens" / "ml-100k.zip"

# training weightings: recency (time) half-life in days and position half-life (None = off)
VARIANTS: dict[str, dict[str, float | None]] = {
    "time60": {"recency_half_life_days": 60.0, "position_half_life": None},
    "pos3": {"recency_half_life_days": None, "position_half_life": 3.0},
    "pos10": {"recency_half_life_days": None, "position_half_life": 10.0},
    "pos30": {"recency_half_life_days": None, "position_half_life": 30.0},
    "pos10xtime60": {"recency_half_life_days": 60.0, "position_half_life": 10.0},
}
# priors: ("none"|"time"|"position", half-life); weights; "inf" = the prior alone (taste breaks ties)
PRIORS: list[tuple[str, float | None]] = [("none", None)]
PRIORS += [("time", h) for h in (None, 14.0, 30.0, 60.0, 120.0)]
PRIORS += [("position", h) for h in (1.0, 3.0, 10.0, 30.0)]
WEIGHTS = (0.25, 0.5, 1.0, 2.0, 1000.0)

_DS: Any = None


def _dataset(source: str) -> Any:
    global _DS
    if _DS is None:
        from recsys_data import load_dataset

        _DS = load_dataset(source)
    return _DS


def _prior(ds: Any, model: Any, train: np.ndarray, kind: str, h: float | None) -> np.ndarray:
    from recsys_embedder.training.two_tower import popularity_prior, positions_from_end

    inter = ds.interactions
    ts = np.asarray(inter.timestamps, np.float64)[train]
    if kind == "time":
        return popularity_prior(model.movie_ids, inter.movie_ids[train], ts, h)
    pos = positions_from_end(inter.user_ids[train], inter.movie_ids[train], ts)
    return popularity_prior(
        model.movie_ids, inter.movie_ids[train], ts, None, positions=pos, position_half_life=h
    )


def _score(ds: Any, masks: tuple[np.ndarray, ...], model: Any, target: str) -> dict[str, float]:
    from recsys_embedder.evaluation.two_tower import evaluate_two_tower_cold

    return evaluate_two_tower_cold(ds, masks, model, target=target)


def grid_job(source: str, variant: str, fold: int, seed: int, epochs: int) -> dict[str, Any]:
    """Train one tower pair on fold ``fold``'s TRAIN and score every prior on its target."""
    import torch
    from recsys_embedder.evaluation.two_tower import extended_validation_masks
    from recsys_embedder.training.two_tower import train_two_tower

    torch.set_num_threads(1)
    ds = _dataset(source)
    masks = extended_validation_masks(ds.interactions, folds=fold + 1)[fold]
    t0 = time.perf_counter()
    model = train_two_tower(ds, masks[0], seed=seed, epochs=epochs, **VARIANTS[variant])  # type: ignore[arg-type]
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {}
    for kind, h in PRIORS:
        if kind == "none":
            out["none"] = _score(
                ds, masks, dataclasses.replace(model, item_prior=None, prior_weight=0.0), "valid"
            )
            continue
        prior = _prior(ds, model, masks[0], kind, h)
        for w in WEIGHTS:
            m = _score(ds, masks, dataclasses.replace(model, item_prior=prior, prior_weight=w), "valid")
            out[f"{kind}:{h}:{w}"] = m
    return {"variant": variant, "fold": fold, "seed": seed, "seconds": seconds, "scores": out}


def test_job(source: str, variant: str, prior_key: str, seed: int, epochs: int) -> dict[str, Any]:
    """Refit the chosen setting on TRAIN+VALIDATION and score TEST."""
    import torch
    from recsys_data import leave_last_out
    from recsys_embedder.training.two_tower import train_two_tower

    torch.set_num_threads(1)
    ds = _dataset(source)
    masks = leave_last_out(ds.interactions)
    seen = masks[0] | masks[1]
    model = train_two_tower(ds, seen, seed=seed, epochs=epochs, **VARIANTS[variant])  # type: ignore[arg-type]
    if prior_key == "none":
        model = dataclasses.replace(model, item_prior=None, prior_weight=0.0)
    else:
        kind, h, w = prior_key.split(":")
        prior = _prior(ds, model, seen, kind, None if h == "None" else float(h))
        model = dataclasses.replace(model, item_prior=prior, prior_weight=float(w))
    return {"seed": seed, "scores": _score(ds, masks, model, "test")}


def rank_settings(results: list[dict[str, Any]], variants: list[str]) -> list[tuple[float, float, str, str]]:
    """``(mean HR@10, mean NDCG@10, variant, prior key)`` best first: HR@10, then NDCG@10 breaking
    ties. Means are rounded to 1e-9 so that float summation order cannot break a real tie."""

    def mean_of(variant: str, key: str, metric: str) -> float:
        vals = [r["scores"][key][f"two_tower/{metric}"] for r in results if r["variant"] == variant]
        return round(float(np.mean(vals)), 9)

    table = [
        (mean_of(v, key, "hr@10"), mean_of(v, key, "ndcg@10"), v, key)
        for v in variants
        for key in results[0]["scores"]
    ]
    table.sort(key=lambda r: (-r[0], -r[1]))
    return table


def report_grid(
    results: list[dict[str, Any]], variants: list[str], seeds: list[int], folds: int
) -> tuple[str, str]:
    folds_pop = {
        f: next(r["scores"]["none"] for r in results if r["fold"] == f) for f in range(folds)
    }  # baselines do not depend on the model
    pop = float(np.mean([m["popular/hr@10"] for m in folds_pop.values()]))
    recent = float(np.mean([m["recent_popular/hr@10"] for m in folds_pop.values()]))
    print(f"\nextended VALIDATION ({folds} folds x seeds {seeds}): most popular HR@10 {pop:.4f}, "
          f"recent popular {recent:.4f}")  # fmt: skip
    table = rank_settings(results, variants)
    print("| rank | training weights | prior (kind:half-life:weight) | HR@10 | NDCG@10 |")
    print("| ---: | --- | --- | ---: | ---: |")
    for i, (hr, nd, v, key) in enumerate(table[:15], 1):
        print(f"| {i} | {v} | {key} | {hr:.5f} | {nd:.5f} |")
    for v in variants:
        best = next(r for r in table if r[2] == v)
        print(f"best for {v}: {best[3]} HR@10 {best[0]:.5f}")
    hr, nd, variant, key = table[0]
    print(f"\nchosen: {variant} + {key} (VALIDATION HR@10 {hr:.5f}, NDCG@10 {nd:.5f})")
    return variant, key


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED_ML100K) if SHARED_ML100K.is_file() else "ml-100k")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {sorted(VARIANTS)}")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--test-seeds", default="0,1,2,3,4")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2, help="trainings in parallel (one thread each)")
    ap.add_argument("--json", type=Path, default=None, help="also write every score here")
    ap.add_argument("--chosen", default="", help="skip the grid, TEST this VARIANT/PRIOR only")
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variants {sorted(unknown)}; known: {sorted(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    test_seeds = [int(s) for s in args.test_seeds.split(",") if s]
    started = time.perf_counter()
    print(f"data {args.data}; load average {os.getloadavg()[0]:.1f}; {args.jobs} parallel trainings")

    results: list[dict[str, Any]] = []
    if args.chosen:  # skip the grid: TEST only for VARIANT/KIND:HALF-LIFE:WEIGHT
        variant, _, key = args.chosen.partition("/")
        if variant not in VARIANTS or not key:
            ap.error(
                f"--chosen: VARIANT/PRIOR, e.g. pos10xtime60/time:30.0:0.25 (variants {sorted(VARIANTS)})"
            )
        print(f"chosen (given): {variant} + {key}")
    else:
        jobs = [(args.data, v, f, s, args.epochs) for v in variants for f in range(args.folds) for s in seeds]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(grid_job, *zip(*jobs, strict=True)))
        train_s = [r["seconds"] for r in results]
        print(f"{len(results)} grid trainings, {np.mean(train_s):.1f}s each (mean)")
        variant, key = report_grid(results, variants, seeds, args.folds)

    tests: list[dict[str, Any]] = []
    if test_seeds:
        tjobs = [(args.data, variant, key, s, args.epochs) for s in test_seeds]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            tests = list(pool.map(test_job, *zip(*tjobs, strict=True)))
        print("\nTEST (refitted on TRAIN+VALIDATION), users treated as new:")
        print("| seed | two-tower HR@10 / NDCG@10 | most popular | recent popular |")
        print("| ---: | ---: | ---: | ---: |")
        for t in tests:
            m = t["scores"]
            print(f"| {t['seed']} | {m['two_tower/hr@10']:.4f} / {m['two_tower/ndcg@10']:.4f} | "
                  f"{m['popular/hr@10']:.4f} / {m['popular/ndcg@10']:.4f} | "
                  f"{m['recent_popular/hr@10']:.4f} / {m['recent_popular/ndcg@10']:.4f} |")  # fmt: skip
        wins = sum(t["scores"]["two_tower/hr@10"] > t["scores"]["popular/hr@10"] for t in tests)
        mean_tt = np.mean([t["scores"]["two_tower/hr@10"] for t in tests])
        ratio = mean_tt / tests[0]["scores"]["popular/hr@10"]
        print(f"two-tower above most popular on HR@10 for {wins}/{len(tests)} seeds; mean ratio {ratio:.3f}")
    print(f"\ntotal {time.perf_counter() - started:.0f}s")
    if args.json:
        args.json.write_text(json.dumps({"grid": results, "chosen": [variant, key], "test": tests}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
