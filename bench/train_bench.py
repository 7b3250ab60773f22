"""Time PinSage training and evaluation on a MovieLens data set (prints numbers; never a test).

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_bench.py --data ml-100k [--epochs 15]
    OMP_NUM_THREADS=1 .venv/bin/python bench/train_bench.py --data ml-100k --loss sampled --negatives 1024

Prints the seconds and peak RSS of each stage (load + split, training, evaluation), wall and CPU
seconds of training, seconds per epoch, next-item events per second, and the TEST metrics of each
user form. ``--loss sampled`` trains with the logQ-corrected sampled softmax (only the movies a
step touches are encoded); ``--max-steps-per-epoch`` bounds an epoch for a quick events/s reading
on a large data set (its metrics then mean little). The issue's target: ml-100k trains in < 10 min
on a 2-core CPU.

``--nproc 1,2`` (issue #19) runs the same training under ``torchrun --standalone
--nproc_per_node N`` for each N (gloo, data-parallel: each process trains its slice of every
global batch, :mod:`recsys_embedder.training.distributed`) and prints, per process count, the
step loop's events/s, the peak RSS of each process and the TEST HR@10 / NDCG@10 (pinsage form):

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_bench.py --data ml-100k --epochs 1 --nproc 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from recsys_embedder.evaluation import evaluate as E
from recsys_embedder.training import data as D
from recsys_embedder.training import distributed as DP
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
    ap.add_argument("--nproc", help="comma-separated process counts, each run under torchrun (1,2)")
    ap.add_argument("--json", help=argparse.SUPPRESS)  # a torchrun worker's report (rank 0)
    args = ap.parse_args()
    if args.nproc:
        compare(args)
        return
    ctx = DP.from_env()
    if ctx is not None:
        DP.init(ctx)
        worker(args, ctx)
        DP.close()
        return
    t0 = time.perf_counter()
    p = D.load(args.data)
    t_load = time.perf_counter() - t0
    n_train = int((p.split == D.TRAIN).sum())
    print(
        f"data {p.name}: {p.n_users} users, {p.n_items} movies, {len(p.split)} ratings "
        f"({n_train} TRAIN); load average {os.getloadavg()[0]:.1f}"
    )
    print(f"load + split: {t_load:.1f}s, peak RSS {peak_rss_gib():.2f} GiB")
    cfg = _config(args)
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


def _config(args: argparse.Namespace) -> TrainConfig:
    """The training configuration the command line names (one process or each torchrun rank)."""
    return TrainConfig(
        epochs=args.epochs,
        threads=args.threads,
        loss=args.loss,
        negatives=args.negatives,
        negative_alpha=args.negative_alpha,
        max_steps_per_epoch=args.max_steps_per_epoch,
    )


def worker(args: argparse.Namespace, ctx: DP.Distributed) -> None:
    """One torchrun process: train, then rank 0 evaluates and writes the report."""
    p = D.load(args.data)
    cfg = _config(args)
    res = train(p, cfg, progress=False, log=lambda _m: None, dist=ctx)
    rss: list[object] = [None] * ctx.world_size
    torch.distributed.all_gather_object(rss, peak_rss_gib())
    if not ctx.is_main:
        return
    n_train = int((p.split == D.TRAIN).sum())
    events = n_train - p.n_users
    if args.max_steps_per_epoch:
        events = min(events, args.max_steps_per_epoch * cfg.batch_size)
    steps = sum(res.step_seconds) / max(len(res.step_seconds), 1)
    report: dict[str, object] = {
        "processes": ctx.world_size,
        "epochs": len(res.history),
        "training_s": res.training_time_s,
        "step_loop_s": steps,
        "events_per_s": events / max(steps, 1e-9),
        "peak_rss_gib": rss,
    }
    if not args.no_eval:
        phases = {n: E.make_phase(p, n) for n in E.PHASES}
        forms = E.evaluate_pinsage(res.model, torch.from_numpy(res.item_embeddings), p, phases)
        report["test"] = forms["pinsage"]["test"]
    Path(args.json).write_text(json.dumps(report))


def compare(args: argparse.Namespace) -> None:
    """Run this script under torchrun for each process count and print one row each."""
    passed = [a for a in sys.argv[1:] if not a.startswith("--nproc")]
    if "--nproc" in sys.argv:
        i = passed.index(args.nproc)
        passed = passed[:i] + passed[i + 1 :]
    print(f"data {args.data}, load average {os.getloadavg()[0]:.1f}; torchrun --standalone, gloo")
    print(
        "| processes | epochs | training s | step loop s/epoch | events/s | peak RSS GiB per process | TEST HR@10 | NDCG@10 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in (int(x) for x in args.nproc.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "report.json"
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                   f"--nproc_per_node={n}", __file__, *passed, "--json", str(out)]  # fmt: skip
            env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
            subprocess.run(cmd, check=True, env=env)
            r = json.loads(out.read_text())
        test = r.get("test") or {}
        rss = ", ".join(f"{v:.2f}" for v in r["peak_rss_gib"])
        print(
            f"| {n} | {r['epochs']} | {r['training_s']:.1f} | {r['step_loop_s']:.1f} | {r['events_per_s']:.0f} | "
            f"{rss} | {test.get('hr@10', float('nan')):.4f} | {test.get('ndcg@10', float('nan')):.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
