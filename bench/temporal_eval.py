"""Offline evaluation on a global time split (prints numbers; never a test).

    OMP_NUM_THREADS=1 .venv/bin/python bench/temporal_eval.py --data ml-100k [--epochs 15]

Cutoff = the timestamp before which a fraction ``--quantile`` (0.9) of all events lie; every
model sees only the events before it (PinSage trains on them, re-split by leave-last-out for
early stopping) and ranks each user's first event at/after it (users with events on both sides).
Prints a markdown table: popular, recent popular (``--half-life-days``), item-kNN, EASE and the
PinSage user forms, HR@10/NDCG@10 for every target and for targets rated >= 4; then the
no-signal fallback's popularity rule as ``recsys train`` chooses it (every candidate on the
VALIDATION time split inside the past and on this split). See
``recsys_embedder.evaluation.temporal``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from recsys_embedder.evaluation import temporal as T
from recsys_embedder.model.pinsage import USER_FORMS
from recsys_embedder.training import data as D
from recsys_embedder.training.train import TrainConfig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="ml-100k")
    ap.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    ap.add_argument("--max-steps-per-epoch", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quantile", type=float, default=T.DEFAULT_QUANTILE)
    ap.add_argument("--half-life-days", type=float, default=T.RECENT_POPULAR_HALF_LIFE_DAYS)
    ap.add_argument("--no-pinsage", action="store_true", help="baselines only")
    ap.add_argument("--json", default=None, help="also write the results there")
    args = ap.parse_args()
    t0 = time.perf_counter()
    p = D.load(args.data)
    cfg = TrainConfig(epochs=args.epochs, threads=args.threads, max_steps_per_epoch=args.max_steps_per_epoch)
    res = T.run_temporal(
        p,
        cfg,
        quantile=args.quantile,
        half_life_days=args.half_life_days,
        forms=USER_FORMS,
        pinsage=not args.no_pinsage,
        log=lambda m: print(m, flush=True),
    )
    print(f"\ndata {p.name}: {p.n_users} users, {p.n_items} movies; total {time.perf_counter() - t0:.0f}s")
    if res["training"]:
        tr = res["training"]
        print(f"pinsage: best epoch {tr['best_epoch']} of {tr['epochs_run']} run, {tr['seconds']}s training")
    print(f"ease lambda {res['params']['ease']['lambda']:g}\n")
    print(T.format_temporal_table(res))
    # the serving default this split chooses: the no-signal fallback's popularity rule
    choice = T.choose_popularity(p, quantile=args.quantile)
    res["popularity"] = choice
    print("\nno-signal fallback (catalog GetPopular), chosen on the VALIDATION time split:\n")
    print(T.format_popularity_table(choice))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
