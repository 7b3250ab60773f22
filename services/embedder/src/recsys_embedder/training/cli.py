"""``recsys train``: train PinSage on a data set and write a versioned artifact."""

from __future__ import annotations

import argparse
import dataclasses
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
from recsys_embedder.evaluation import quiz as Q
from recsys_embedder.evaluation.temporal import choose_popularity, popularity_summary
from recsys_embedder.signals import HistoryRule
from recsys_embedder.training import data as D
from recsys_embedder.training import distributed as DP
from recsys_embedder.training import sampled as S
from recsys_embedder.training import two_tower_step as TT
from recsys_embedder.training.train import TrainConfig, TrainResult, all_events, train


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _quiet(msg: str) -> None:
    """The log of ranks other than 0 (rank 0 says it for the job)."""


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def _non_negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return v


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train PinSage and write a versioned artifact",
        description="Train PinSage on TRAIN events (leave-last-out split), early-stop on VALIDATION, "
        "choose the user form and the low-rating rule on VALIDATION, report TEST, then refit the "
        "served model on every event with the chosen settings and write <out>/<version>/ plus "
        "<out>/latest.",
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
    p.add_argument(
        "--loss",
        choices=S.LOSSES,
        default=d.loss,
        help="next-item loss: full softmax over the catalog (default) or sampled softmax with the "
        "logQ correction (a step encodes only the movies it touches)",
    )
    p.add_argument(
        "--negatives",
        type=_positive_int,
        default=d.negatives,
        help=f"--loss sampled: negatives per step ({d.negatives})",
    )
    p.add_argument(
        "--negative-alpha",
        type=_non_negative_float,
        default=d.negative_alpha,
        help=f"--loss sampled: draw negatives by (TRAIN count + 1)^alpha ({d.negative_alpha}; 0 = uniform)",
    )
    p.add_argument("--no-id-embedding", action="store_true", help="features and neighbours only")
    p.add_argument("--max-steps-per-epoch", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--baselines", action="store_true", help="also run the baselines into the manifest")
    p.add_argument("--no-resume", action="store_true", help="ignore a checkpoint of an interrupted run")
    p.add_argument(
        "--no-refit",
        action="store_true",
        help="serve the TRAIN-only model instead of refitting on every event (its TEST numbers stay "
        "reportable by `recsys evaluate` on this data set)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--dist-timeout",
        type=_positive_int,
        default=3600,
        help="under torchrun: seconds any rank waits for the others (rank 0 evaluates and writes "
        "the artifact meanwhile; default 3600)",
    )
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
        loss=args.loss,
        negatives=args.negatives,
        negative_alpha=args.negative_alpha,
    )


def split_summary(p: D.Prepared, refit: bool) -> dict[str, Any]:
    counts = np.bincount(p.split, minlength=3)
    return {
        "protocol": "leave-last-out: per user, events sorted by (timestamp, movie id); last = TEST, "
        "the one before = VALIDATION, the rest TRAIN (users with < 3 events: TRAIN only)",
        "trained_on": "ALL" if refit else "TRAIN",
        "events": {"train": int(counts[0]), "validation": int(counts[1]), "test": int(counts[2])},
        "users": p.n_users,
        "movies": p.n_items,
    }


def trained_on(p: D.Prepared, refit: bool) -> dict[str, Any]:
    """Which events the served model saw: what ``recsys evaluate`` checks before reporting TEST."""
    return {
        "events": "all" if refit else "train",
        "dataset": p.name,
        "content_sha256": p.content_sha256(),
        "holdout_of": p.holdout_of,
        "count": len(p.split) if refit else int((p.split == D.TRAIN).sum()),
    }


def build_manifest(
    p: D.Prepared,
    cfg: TrainConfig,
    res: TrainResult,
    forms: dict[str, dict[str, dict[str, float]]],
    baselines: dict[str, dict[str, object]] | None,
    rules: dict[str, dict[str, dict[str, float]]] | None = None,
    rule: HistoryRule | None = None,
    served: TrainResult | None = None,
    quiz: dict[str, Any] | None = None,
    popularity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``res`` is the selection run (TRAIN, early-stopped on VALIDATION: every metric comes from
    it); ``served`` the refit on every event when there is one (its weights are saved)."""
    best = E.best_form(forms)
    flat = {f"{ph}/{m}": v for ph, ms in forms[best].items() for m, v in ms.items()}
    out = served or res
    refit = served is not None
    return {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "dataset": {"name": p.name, "sha256": p.sha256, "content_sha256": p.content_sha256()},
        "split": split_summary(p, refit),
        "trained_on": trained_on(p, refit),
        "seed": cfg.seed,
        "training_time_s": round(res.training_time_s + (served.training_time_s if served else 0.0), 1),
        "training_cpu_s": round(res.training_cpu_s + (served.training_cpu_s if served else 0.0), 1),
        "git_revision": A.git_revision(),
        "package_versions": A.package_versions(),
        "metric": "IP",
        "dimension": out.model_config.dim,
        "movie_count": p.n_items,
        "metrics": flat,
        "metrics_from": "the selection model (TRAIN events, early-stopped on VALIDATION)"
        + ("; the served weights are its refit on every event" if refit else ""),
        "models": {
            "pinsage": {
                "default_form": best,
                "forms": list(forms),
                "model_config": {
                    **out.model_config.to_json(),
                    **({"dislike_weight": quiz["dislike_weight"]} if quiz else {}),
                },
                "feature_spec": out.feature_spec.to_json(),
                "hyperparameters": cfg.to_json(),
                "best_epoch": res.best_epoch,
                "history": res.history,
                "metrics": forms,
                "serving": {
                    "history_rule": (rule or HistoryRule()).to_json(),
                    "history_rules": rules or {},
                    "history_rule_choice": "best VALIDATION HR@10 among the rules that lose to "
                    "'history' on neither target (will watch, will like)",
                    "quiz": quiz,
                    "popularity": popularity,
                },
                "refit": {
                    "epochs": res.best_epoch,
                    "events": len(p.split),
                    "training_time_s": round(served.training_time_s, 1),
                }
                if served is not None
                else None,
            }
        },
        "baselines": baselines or {},
    }


def checkpoint_path(out: Path, p: D.Prepared, cfg: TrainConfig) -> Path:
    key = json.dumps({"data": [p.name, p.sha256], "cfg": cfg.to_json()}, sort_keys=True)
    return out / ".checkpoints" / f"{p.name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def run(args: argparse.Namespace) -> int:
    """Train and write the artifact. Under ``torchrun`` (``WORLD_SIZE`` set) every process joins
    the process group and trains its slice of each batch (:mod:`.distributed`); rank 0 alone
    evaluates, chooses and writes the artifact, the others wait for it at a barrier."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cfg = config_from_args(args)
    ctx = DP.from_env(device=cfg.device)
    if ctx is None:
        return _run(args, cfg, None)
    DP.init(ctx, timeout_s=float(args.dist_timeout))
    try:
        code = _run(args, cfg, ctx)
        ctx.barrier()  # the others leave when rank 0 has written the artifact
        return code
    finally:
        DP.close()


def _run(args: argparse.Namespace, cfg: TrainConfig, ctx: DP.Distributed | None) -> int:
    main = ctx is None or ctx.is_main
    log = _log if main else _quiet
    p = D.load(args.data)
    out = Path(args.out)
    ck = checkpoint_path(out, p, cfg)
    ck.parent.mkdir(parents=True, exist_ok=True)
    if args.no_resume and ck.exists() and main:
        ck.unlink()
    if ctx is not None:
        ctx.barrier()  # nobody looks for the checkpoint before rank 0 has removed it
    refit = not args.no_refit
    where = "" if ctx is None else f", {ctx.world_size} processes ({ctx.backend})"
    log(f"training PinSage on {p.name} ({p.n_users} users, {p.n_items} movies), seed {cfg.seed}{where}")
    res = train(p, cfg, checkpoint=ck, log=log, progress=main and not args.quiet, dist=ctx)
    if not main:  # the refit is the only other step that needs every process
        if refit:
            refit_cfg = dataclasses.replace(cfg, epochs=max(res.best_epoch, 1))
            train(
                all_events(p),
                refit_cfg,
                checkpoint=ck.with_name(ck.stem + "-refit.pt"),
                log=log,
                progress=False,
                dist=ctx,
            )
        return 0
    phases = {n: E.make_phase(p, n) for n in E.PHASES}
    emb = torch.from_numpy(res.item_embeddings)
    forms = E.evaluate_pinsage(res.model, emb, p, phases)
    best = E.best_form(forms)
    rules = E.evaluate_rules(res.model, emb, p, phases, best)
    rule = E.choose_rule(rules)
    # the served floor: the chosen pool size on every event of the data (what the catalog counts)
    served_counts = np.bincount(p.i, minlength=p.n_items)
    quiz = Q.choose(res.model, emb, p, phases["validation"], best, seed=cfg.seed, served_counts=served_counts)
    _log(
        f"user form {best}; low ratings: {rule.name}; quiz pool {quiz['pool_size']} movies "
        f"(floor {quiz['min_ratings']} ratings), "
        f"dislike weight {quiz['dislike_weight']:g} (chosen on VALIDATION)"
    )
    popularity = choose_popularity(p)
    _log(f"no-signal fallback: {popularity_summary(popularity)} (chosen on a time split)")
    baselines = E.run_baselines(p, phases, seed=cfg.seed, log=_log) if args.baselines else None
    served: TrainResult | None = None
    if refit:
        epochs = max(res.best_epoch, 1)
        _log(f"refitting on every event ({len(p.split)}) for {epochs} epochs (the served model)")
        refit_cfg = dataclasses.replace(cfg, epochs=epochs)
        refit_ck = ck.with_name(ck.stem + "-refit.pt")
        served = train(
            all_events(p), refit_cfg, checkpoint=refit_ck, log=_log, progress=not args.quiet, dist=ctx
        )
        refit_ck.unlink(missing_ok=True)
    manifest = build_manifest(p, cfg, res, forms, baselines, rules, rule, served, quiz, popularity)
    if ctx is not None:
        manifest["distributed"] = {"world_size": ctx.world_size, "backend": ctx.backend}
    out_res = served or res
    arrays = A.PinSageArrays(
        state_dict=out_res.model.state_dict(),
        item_embeddings=out_res.item_embeddings,
        movie_ids=p.movie_ids,
        neighbour_ids=out_res.nbr_ids,
        neighbour_weights=out_res.nbr_w,
        item_dense=out_res.item_dense,
        item_title_tokens=out_res.item_tokens,
    )
    version = A.new_version(p.name)
    while (out / version).exists():  # two runs in one second
        version = A.new_version(p.name, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    two_tower = None
    if not args.no_two_tower:
        two_tower = TT.train_and_evaluate(TT.load(args.data), seed=cfg.seed, log=_log, refit_all=refit)
    folder = A.save_artifact(out, version, arrays, manifest, latest=two_tower is None)
    tt_results: dict[str, Any] = {}
    if two_tower is not None:
        model, tt_results = two_tower
        model.metrics = TT.manifest_metrics(tt_results)
        section = A.save_two_tower(model, folder)
        section["evaluation"] = tt_results
        A.update_manifest(folder, {"models": {"two_tower": section}, "metrics": model.metrics})
        A.write_latest(out, version)
    ck.unlink(missing_ok=True)
    rows = E.table_rows(forms, baselines) + E.rule_rows(best, rules) + E.extra_rows(tt_results)
    print(E.format_table(rows, {n: len(ph.users) for n, ph in phases.items()}))
    print(
        f"\nartifact: {folder} (default user form: {best}; low ratings: {rule.name}; "
        f"training {manifest['training_time_s']:.0f}s wall, {manifest['training_cpu_s']:.0f}s CPU; "
        + (
            "served weights refitted on every event: TEST above is the TRAIN-only selection model's)"
            if refit
            else "served weights = the TRAIN-only model)"
        )
    )
    return 0
