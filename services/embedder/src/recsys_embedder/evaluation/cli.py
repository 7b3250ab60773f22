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


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate an artifact (every user form) and the baselines, one table",
        description="Leave-last-out evaluation: HR@10, NDCG@10, HR@20, MRR@10 on TEST and VALIDATION "
        "for PinSage (each user form) and popular, item-kNN, EASE, BPR-MF. TEST is refused for an "
        "artifact that trained on it; an artifact trained on `recsys data holdout` of --data is "
        "scored on TEST only. --through HOST:PORT scores the running stack through its gateway "
        "instead, every request form beside the offline number.",
    )
    p.add_argument("--artifact", default="artifacts", help="artifact root (uses latest) or version folder")
    p.add_argument("--version", default=None, help="a version under --artifact")
    p.add_argument("--data", default=None, help="data set (default: the artifact's, checksum verified)")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--json", default=None, help="also write the results as JSON to this file")
    p.add_argument("--seed", type=int, default=0, help="seed of the baselines (BPR)")
    from recsys_embedder.evaluation import served

    served.add_arguments(p)
    p.set_defaults(func=run)


class Refused(Exception):
    """The artifact saw the events this evaluation would score: no numbers, a reason."""


ALL_PHASES: tuple[str, ...] = tuple(E.PHASES)


def reportable_phases(manifest: dict[str, Any], p: D.Prepared) -> tuple[tuple[str, ...], str]:
    """Which phases of ``p``'s leave-last-out split this artifact can be scored on honestly, and
    why. Raises :class:`Refused` when it trained on the TEST events (the rule of issue #14)."""
    seen = manifest.get("trained_on")
    if not seen:  # artifacts from before the refit: always trained on TRAIN only
        return ALL_PHASES, "trained on TRAIN events (artifact without a trained_on record)"
    sha = p.content_sha256()
    name = seen.get("dataset", "?")
    if seen.get("content_sha256") == sha:
        if seen.get("events") == "train":
            return ALL_PHASES, f"trained on the TRAIN events of {name}"
        raise Refused(
            f"artifact trained on every event of {name}, TEST and VALIDATION included "
            f"({seen.get('count')} events): its TEST numbers would be inflated, so none are "
            "reported. The TEST numbers of the model selection run (TRAIN only) are in its "
            "manifest (`metrics`). To measure a served model on held-out events: "
            f"`recsys data holdout {name} --out DIR`, train or `recsys up` on DIR, then "
            f"`recsys evaluate --data {name}` (or --through HOST:PORT); or train with --no-refit."
        )
    holdout = seen.get("holdout_of") or {}
    if holdout.get("source_content_sha256") == sha:
        return ("test",), (
            f"trained on {name}, which is this data set without every user's TEST event: TEST "
            "only (its VALIDATION events were in the training data)"
        )
    raise Refused(
        f"artifact trained on {name} (content sha256 {str(seen.get('content_sha256'))[:12]}), "
        f"which is neither this data set ({p.name}, {sha[:12]}) nor a holdout of it: its split "
        "cannot be told apart from its training data"
    )


def evaluate_artifact(
    art: A.Artifact,
    p: D.Prepared,
    baselines: bool = True,
    seed: int = 0,
    data_source: str | None = None,
    report: tuple[str, ...] = ALL_PHASES,
) -> tuple[dict[str, Any], str]:
    """Results dict and the markdown table. PinSage is scored on the ``report`` phases only (see
    :func:`reportable_phases`); the baselines fit on ``p`` itself and report both."""
    if len(art.movie_ids) != p.n_items or not np.array_equal(art.movie_ids, p.movie_ids):
        raise SystemExit("recsys evaluate: the artifact's movies differ from the data set's catalog")
    phases = {n: E.make_phase(p, n) for n in E.PHASES}
    scored = {n: ph for n, ph in phases.items() if n in report}
    emb = torch.from_numpy(art.item_embeddings)
    forms = E.evaluate_pinsage(art.model, emb, p, scored)
    base = E.run_baselines(p, phases, seed=seed, log=_log) if baselines else None
    best = E.best_form(forms) if "validation" in report else art.default_form
    rule = art.history_rule
    rules = E.evaluate_rules(art.model, emb, p, scored, best, [rule]) if rule.low_rating != "history" else {}
    two_tower = evaluate_two_tower(art, data_source)
    rows = E.table_rows(forms, base) + E.rule_rows(best, rules) + E.extra_rows(two_tower)
    table = E.format_table(rows, {n: len(ph.users) for n, ph in scored.items()})
    results = {
        "artifact": art.version,
        "dataset": {"name": p.name, "sha256": p.sha256, "content_sha256": p.content_sha256()},
        "phases": list(report),
        "best_form_on_validation": best,
        "history_rule": rule.to_json(),
        "pinsage": forms,
        "pinsage_rules": rules,
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
    model = A.load_two_tower(art.path, section)
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
    try:
        report, why = reportable_phases(art.manifest, p)
    except Refused as exc:
        print(f"recsys evaluate: refused: {exc}", file=sys.stderr)
        return 2
    if args.through:
        from recsys_embedder.evaluation import served

        return served.run(args, art, p, report)
    results, table = evaluate_artifact(
        art, p, baselines=not args.no_baselines, seed=args.seed, data_source=args.data or ds["name"],
        report=report,
    )  # fmt: skip
    print(f"artifact {art.version} on {p.name} (sha256 {p.sha256[:12]}), leave-last-out; {why}\n")
    print(table)
    if "validation" in report:
        print(f"\nbest PinSage user form on VALIDATION: {results['best_form_on_validation']}")
    else:
        print(f"\nPinSage user form served: {results['best_form_on_validation']} (chosen by its training)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0
