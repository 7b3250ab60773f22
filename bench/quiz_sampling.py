"""Choose the quiz's sampling floor and dislike weight on VALIDATION (offline simulation; prints
numbers, never a test). Needs a TRAIN-only artifact of the data set (`recsys train --no-refit`):

    OMP_NUM_THREADS=1 .venv/bin/recsys train --data ml-100k --out artifacts-trainonly --no-refit
    OMP_NUM_THREADS=1 .venv/bin/python bench/quiz_sampling.py --artifact artifacts-trainonly --data ml-100k

Prints "will like" HR@10 (targets rated >= 4) on VALIDATION for every (floor, dislike weight,
rounds), the choice (best mean over 1 and 3 rounds), and TEST for the choice beside today's
defaults (floor 50: the gateway's sample_min_ratings; weight: the artifact's dislike_weight) and
most popular. See ``recsys_embedder.evaluation.quiz``.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from recsys_embedder import artifacts as A
from recsys_embedder.evaluation import baselines as B
from recsys_embedder.evaluation import evaluate as E
from recsys_embedder.evaluation import quiz as Q
from recsys_embedder.evaluation.cli import reportable_phases
from recsys_embedder.training import data as D


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifact", required=True)
    ap.add_argument("--data", default="ml-100k")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    art = A.load_artifact(args.artifact)
    p = D.load(args.data)
    phases, why = reportable_phases(art.manifest, p)
    if phases != ("validation", "test"):
        raise SystemExit(f"needs a TRAIN-only artifact of {p.name} ({why}): recsys train --no-refit")
    emb = torch.from_numpy(art.item_embeddings)
    form = art.default_form
    val, test = E.make_phase(p, "validation"), E.make_phase(p, "test")
    res = Q.grid(art.model, emb, p, val, form, seed=args.seed)
    print(f"{p.name}, form {form}, VALIDATION ({len(val.users)} users): will-like HR@10 (no answer)\n")
    print("| floor | dislike weight | 1 round | 3 rounds |\n|---|---|---|---|")
    for f in Q.FLOORS:
        for w in Q.WEIGHTS:
            a, b = res[(f, w, 1)], res[(f, w, 3)]
            print(f"| {f} | {w:g} | {a['like/hr@10']:.4f} ({a['no_answer']:.0f}) | "
                  f"{b['like/hr@10']:.4f} ({b['no_answer']:.0f}) |")  # fmt: skip
    best = max(
        ((f, w) for f in Q.FLOORS for w in Q.WEIGHTS),
        key=lambda fw: res[(fw[0], fw[1], 1)]["like/hr@10"] + res[(fw[0], fw[1], 3)]["like/hr@10"],
    )
    default = (50, float(art.model.cfg.dislike_weight))
    print(f"\nchosen on VALIDATION: floor {best[0]}, dislike weight {best[1]:g} (default {default})\n")
    pop_val = E.evaluate_scorer(val, B.fit_popular(val.history))
    pop_test = E.evaluate_scorer(test, B.fit_popular(test.history))
    print(
        "| quiz | valid like/HR@10 | test like/HR@10 | test HR@10 | test no answer |\n|---|---|---|---|---|"
    )
    for name, (f, w) in (("chosen", best), ("default", default)):
        for r in (1, 3):
            t = Q.score(art.model, emb, test, Q.simulate_answers(p, test, f, r, seed=args.seed), form, w)
            v = res.get((f, w, r)) or Q.score(
                art.model, emb, val, Q.simulate_answers(p, val, f, r, seed=args.seed), form, w
            )
            print(f"| {name} (floor {f}, weight {w:g}), {r} round(s) | {v['like/hr@10']:.4f} | "
                  f"{t['like/hr@10']:.4f} | {t['hr@10']:.4f} | {t['no_answer']:.0f} |")  # fmt: skip
    print(f"| most popular | {pop_val['like/hr@10']:.4f} | {pop_test['like/hr@10']:.4f} | "
          f"{pop_test['hr@10']:.4f} | – |")  # fmt: skip


if __name__ == "__main__":
    main()
