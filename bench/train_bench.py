"""Time PinSage training and evaluation on a MovieLens data set (prints numbers; never a test).

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_bench.py --data ml-100k [--epochs 15]

Prints wall and CPU seconds of training, seconds per epoch, next-item events per second, and
the TEST/VALIDATION metrics of each user form. The issue's target: ml-100k trains in < 10 min
on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from recsys_embedder.evaluation import evaluate as E
from recsys_embedder.training import data as D
from recsys_embedder.training.train import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="ml-100k")
    ap.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    p = D.load(args.data)
    cfg = TrainConfig(epochs=args.epochs, threads=args.threads)
    res = train(p, cfg, progress=False)
    events = int((p.split == D.TRAIN).sum()) - p.n_users
    epochs = len(res.history)
    print(f"data {p.name}: {p.n_users} users, {p.n_items} movies; load average {os.getloadavg()[0]:.1f}")
    print(f"training: {res.training_time_s:.1f}s wall, {res.training_cpu_s:.1f}s CPU, {epochs} epochs")
    per_epoch = sum(h["seconds"] for h in res.history) / max(epochs, 1)
    print(f"  {per_epoch:.1f}s per epoch, {events / per_epoch:.0f} next-item events/s")
    t0 = time.perf_counter()
    phases = {n: E.make_phase(p, n) for n in E.PHASES}
    forms = E.evaluate_pinsage(res.model, torch.from_numpy(res.item_embeddings), p, phases)
    print(f"evaluation of {len(forms)} user forms: {time.perf_counter() - t0:.1f}s")
    for form, m in forms.items():
        print(f"  {form:8s} test hr@10 {m['test']['hr@10']:.4f} ndcg@10 {m['test']['ndcg@10']:.4f}")


if __name__ == "__main__":
    main()
