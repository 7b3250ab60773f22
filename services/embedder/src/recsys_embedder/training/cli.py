"""``recsys train``: train PinSage on a data set and write a versioned artifact."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recsys_embedder import artifacts as A
from recsys_embedder.evaluation import evaluate as E
from recsys_embedder.training import data as D
from recsys_embedder.training import two_tower_step as TT
from recsys_embedder.training.train import TrainConfig, TrainResult, train
from recsys_embedder.twotower import save_two_tower


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train PinSage and write a versioned artifact",
        description="Train PinSage on TRAIN events (leave-last-out split), early-stop on VALIDATION, "
        "and write <out>/<version>/ plus <out>/latest.",
    )
    d = TrainConfig()
    p.add_argument("--data", default="ml-100k", help="data set name, folder or zip (default ml-100k)")
    p.add_argument("--out", default="artifacts", help="artifact root (default ./artifacts)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--patience", type=int, default=d.patience)
    p.add_argument("--dim", type=int, default=d.dim)
    p.add_argument("--neighbours", type=int, default=d.n_neighbours)
    p.add_argument("--walks", type=int, default=d.num_random_walks, help="random walks per movie")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--user-window", type=int, default=d.user_window)
    p.add_argument("--item-loss-weight", type=float, default=d.item_loss_weight)
    p.add_argument("--no-id-embedding", action="store_true", help="features and neighbours only")
    p.add_argument("--max-steps-per-epoch", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--baselines", action="store_true", help="also run the baselines into the manifest")
    p.add_argument("--no-resume", action="store_true", help="ignore a checkpoint of an interrupted run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--no-two-tower", action="store_true", help="skip the demographic two-tower model (issue #5)"
    )
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("recsys train: --device cuda but no CUDA device is available")
    return TrainConfig(
        dim=args.dim,
        hidden=args.dim,
        n_neighbours=args.neighbours,
        num_random_walks=args.walks,
        use_id_embedding=not args.no_id_embedding,
        user_window=args.user_window,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        lr=args.lr,
        item_loss_weight=args.item_loss_weight,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        max_steps_per_epoch=args.max_steps_per_epoch,
    )


def split_summary(p: D.Prepared) -> dict[str, Any]:
    counts = np.bincount(p.split, minlength=3)
    return {
        "protocol": "leave-last-out: per user, events sorted by (timestamp, movie id); last = TEST, "
        "the one before = VALIDATION, the rest TRAIN (users with < 3 events: TRAIN only)",
        "trained_on": "TRAIN",
        "events": {"train": int(counts[0]), "validation": int(counts[1]), "test": int(counts[2])},
        "users": p.n_users,
        "movies": p.n_items,
    }


def build_manifest(
    p: D.Prepared,
    cfg: TrainConfig,
    res: TrainResult,
    forms: dict[str, dict[str, dict[str, float]]],
    baselines: dict[str, dict[str, object]] | None,
) -> dict[str, Any]:
    best = E.best_form(forms)
    flat = {f"{ph}/{m}": v for ph, ms in forms[best].items() for m, v in ms.items()}
    return {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "dataset": {"name": p.name, "sha256": p.sha256, "content_sha256": p.content_sha256()},
        "split": split_summary(p),
        "seed": cfg.seed,
        "training_time_s": round(res.training_time_s, 1),
        "training_cpu_s": round(res.training_cpu_s, 1),
        "git_revision": A.git_revision(),
        "package_versions": A.package_versions(),
        "metric": "IP",
        "dimension": res.model_config.dim,
        "movie_count": p.n_items,
        "metrics": flat,
        "models": {
            "pinsage": {
                "default_form": best,
                "forms": list(forms),
                "model_config": res.model_config.to_json(),
                "feature_spec": res.feature_spec.to_json(),
                "hyperparameters": cfg.to_json(),
                "best_epoch": res.best_epoch,
                "history": res.history,
                "metrics": forms,
            }
        },
        "baselines": baselines or {},
    }


def checkpoint_path(out: Path, p: D.Prepared, cfg: TrainConfig) -> Path:
    key = json.dumps({"data": [p.name, p.sha256], "cfg": cfg.to_json()}, sort_keys=True)
    return out / ".checkpoints" / f"{p.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cfg = config_from_args(args)
    p = D.load(args.data)
    out = Path(args.out)
    ck = checkpoint_path(out, p, cfg)
    ck.parent.mkdir(parents=True, exist_ok=True)
    if args.no_resume and ck.exists():
        ck.unlink()
    _log(f"training PinSage on {p.name} ({p.n_users} users, {p.n_items} movies), seed {cfg.seed}")
    res = train(p, cfg, checkpoint=ck, log=_log, progress=not args.quiet)
    phases = {n: E.make_phase(p, n) for n in E.PHASES}
    forms = E.evaluate_pinsage(res.model, torch.from_numpy(res.item_embeddings), p, phases)
    baselines = E.run_baselines(p, phases, seed=cfg.seed, log=_log) if args.baselines else None
    manifest = build_manifest(p, cfg, res, forms, baselines)
    arrays = A.PinSageArrays(
        state_dict=res.model.state_dict(),
        item_embeddings=res.item_embeddings,
        movie_ids=p.movie_ids,
        neighbour_ids=res.nbr_ids,
        neighbour_weights=res.nbr_w,
        item_dense=res.item_dense,
        item_title_tokens=res.item_tokens,
    )
    version = A.new_version(p.name)
    while (out / version).exists():  # two runs in one second
        version = A.new_version(p.name, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    two_tower = None
    if not args.no_two_tower:
        two_tower = TT.train_and_evaluate(TT.load(args.data), seed=cfg.seed, log=_log)
    folder = A.save_artifact(out, version, arrays, manifest, latest=two_tower is None)
    tt_results: dict[str, Any] = {}
    if two_tower is not None:
        model, tt_results = two_tower
        model.metrics = TT.manifest_metrics(tt_results)
        section = save_two_tower(model, folder)
        section["evaluation"] = tt_results
        A.update_manifest(folder, {"models": {"two_tower": section}, "metrics": model.metrics})
        A.write_latest(out, version)
    ck.unlink(missing_ok=True)
    rows = E.table_rows(forms, baselines) + E.extra_rows(tt_results)
    print(E.format_table(rows, {n: len(ph.users) for n, ph in phases.items()}))
    print(
        f"\nartifact: {folder} (default user form: {manifest['models']['pinsage']['default_form']}; "
        f"training {res.training_time_s:.0f}s wall, {res.training_cpu_s:.0f}s CPU)"
    )
    return 0
