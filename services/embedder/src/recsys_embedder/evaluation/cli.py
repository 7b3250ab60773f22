"""``recsys evaluate``: the protocol's table for an artifact, with the baselines."""

from __future__ import annotations

import argparse
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
from recsys_embedder.twotower import load_two_tower


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate an artifact (every user form) and the baselines, one table",
        description="Leave-last-out evaluation: HR@10, NDCG@10, HR@20, MRR@10 on TEST and VALIDATION "
        "for PinSage (each user form) and popular, item-kNN, EASE, BPR-MF.",
    )
    p.add_argument("--artifact", default="artifacts", help="artifact root (uses latest) or version folder")
    p.add_argument("--version", default=None, help="a version under --artifact")
    p.add_argument("--data", default=None, help="data set (default: the artifact's, checksum verified)")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--json", default=None, help="also write the results as JSON to this file")
    p.add_argument("--seed", type=int, default=0, help="seed of the baselines (BPR)")
    p.set_defaults(func=run)


def evaluate_artifact(
    art: A.Artifact, p: D.Prepared, baselines: bool = True, seed: int = 0, data_source: str | None = None
) -> tuple[dict[str, Any], str]:
    """Results dict and the markdown table."""
    if len(art.movie_ids) != p.n_items or not np.array_equal(art.movie_ids, p.movie_ids):
        raise SystemExit("recsys evaluate: the artifact's movies differ from the data set's catalog")
    phases = {n: E.make_phase(p, n) for n in E.PHASES}
    forms = E.evaluate_pinsage(art.model, torch.from_numpy(art.item_embeddings), p, phases)
    base = E.run_baselines(p, phases, seed=seed, log=_log) if baselines else None
    best = E.best_form(forms)
    two_tower = evaluate_two_tower(art, data_source)
    rows = E.table_rows(forms, base) + E.extra_rows(two_tower)
    table = E.format_table(rows, {n: len(ph.users) for n, ph in phases.items()})
    results = {
        "artifact": art.version,
        "dataset": {"name": p.name, "sha256": p.sha256},
        "best_form_on_validation": best,
        "pinsage": forms,
        "baselines": base or {},
        "two_tower_cold": two_tower,
    }
    return results, table


def evaluate_two_tower(art: A.Artifact, data_source: str | None) -> dict[str, Any]:
    """The artifact's two-tower model for users treated as new: TEST measured now; VALIDATION
    from the manifest (it came from the TRAIN-only model, which the artifact does not keep)."""
    section = art.manifest.get("models", {}).get("two_tower")
    if not section or data_source is None:
        return {}
    model = load_two_tower(art.path, section)
    results = TT.evaluate(TT.load(data_source), model)
    stored = section.get("evaluation", {})
    for name, res in results.items():
        res["validation"] = stored.get(name, {}).get("validation", {})
    return results


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    try:
        art = A.load_artifact(args.artifact, args.version)
    except A.ArtifactError as exc:
        print(f"recsys evaluate: {exc}", file=sys.stderr)
        return 2
    ds = art.manifest["dataset"]
    p = D.load(args.data or ds["name"])
    if args.data is None and ds.get("sha256") and p.sha256 and p.sha256 != ds["sha256"]:
        print(
            f"recsys evaluate: data set checksum differs from the artifact's ({ds['sha256']})",
            file=sys.stderr,
        )
        return 2
    results, table = evaluate_artifact(
        art, p, baselines=not args.no_baselines, seed=args.seed, data_source=args.data or ds["name"]
    )
    print(f"artifact {art.version} on {p.name} (sha256 {p.sha256[:12]}), leave-last-out\n")
    print(table)
    print(f"\nbest PinSage user form on VALIDATION: {results['best_form_on_validation']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0
