"""Time PinSage training and evaluation on a MovieLens data set (prints numbers; never a test).

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_bench.py --data ml-100k [--epochs 15]
    OMP_NUM_THREADS=1 .venv/bin/python bench/train_bench.py --data ml-100k --loss sampled --negatives 1024

Prints the seconds and peak RSS of each stage (load + split, training, evaluation), wall and CPU
seconds of training, seconds per epoch, next-item events per second, and the TEST metrics of each
user form. ``--loss sampled`` trains with the logQ-corrected sampled softmax (only the movies a
step touches are encoded); ``--max-steps-per-epoch`` bounds an epoch for a quick events/s reading
on a large data set (its metrics then mean little). The issue's target: ml-100k trains in < 10 min
on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from recsys_embedder.evaluation import evaluate as E
from recsys_embedder.training import data as D
from recsys_embedder.training.sampled import LOSSES
from recsys_embedder.training.train import TrainConfig, train


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    d = TrainConfig()
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="ml-100k")
    ap.add_argument("--epochs", type=int, default=d.epochs)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--loss", choices=LOSSES, default=d.loss)
    ap.add_argument("--negatives", type=int, default=d.negatives)
    ap.add_argument("--negative-alpha", type=float, default=d.negative_alpha)
    ap.add_argument("--max-steps-per-epoch", type=int, default=0)
    ap.add_argument("--no-eval", action="store_true", help="skip the evaluation of the user forms")
    args = ap.parse_args()
    t0 = time.perf_counter()
    p = D.load(args.data)
    t_load = time.perf_counter() - t0
    n_train = int((p.split == D.TRAIN).sum())
    print(
        f"data {p.name}: {p.n_users} users, {p.n_items} movies, {len(p.split)} ratings "
        f"({n_train} TRAIN); load average {os.getloadavg()[0]:.1f}"
    )
    print(f"load + split: {t_load:.1f}s, peak RSS {peak_rss_gib():.2f} GiB")
    cfg = TrainConfig(
        epochs=args.epochs,
        threads=args.threads,
        loss=args.loss,
        negatives=args.negatives,
        negative_alpha=args.negative_alpha,
        max_steps_per_epoch=args.max_steps_per_epoch,
    )
    res = train(p, cfg, progress=False)
    epochs = len(res.history)
    loss = (
        f"sampled, {cfg.negatives} negatives, alpha {cfg.negative_alpha:g}"
        if cfg.loss == "sampled"
        else "full"
    )
    print(f"loss: {loss}")
    loop_s = sum(h["seconds"] for h in res.history)
    print(
        f"training: {res.training_time_s:.1f}s wall ({res.training_time_s - loop_s:.1f}s of it outside the "
        f"epochs: graph, neighbour tables, final embedding), {res.training_cpu_s:.1f}s CPU, "
        f"{epochs} epochs (best {res.best_epoch}), peak RSS {peak_rss_gib():.2f} GiB"
    )
    events = n_train - p.n_users  # every TRAIN event but each user's first
    if args.max_steps_per_epoch:
        events = min(events, args.max_steps_per_epoch * cfg.batch_size)
    per_epoch = loop_s / max(epochs, 1)
    steps = sum(res.step_seconds) / max(len(res.step_seconds), 1)
    print(
        f"  {per_epoch:.1f}s per epoch with validation, {events / per_epoch:.0f} next-item events/s; "
        f"step loop alone {steps:.1f}s, {events / max(steps, 1e-9):.0f} events/s"
    )
    if args.no_eval:
        return
    t0 = time.perf_counter()
    phases = {n: E.make_phase(p, n) for n in E.PHASES}
    forms = E.evaluate_pinsage(res.model, torch.from_numpy(res.item_embeddings), p, phases)
    print(
        f"evaluation of {len(forms)} user forms: {time.perf_counter() - t0:.1f}s, peak RSS {peak_rss_gib():.2f} GiB"
    )
    for form, m in forms.items():
        print(f"  {form:8s} test hr@10 {m['test']['hr@10']:.4f} ndcg@10 {m['test']['ndcg@10']:.4f}")


if __name__ == "__main__":
    main()
