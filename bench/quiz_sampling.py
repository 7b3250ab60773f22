"""Choose the quiz's sampling floor and dislike weight on VALIDATION (offline simulation; prints
numbers, never a test). Needs a TRAIN-only artifact of the data set (`recsys train --no-refit`):

    OMP_NUM_THREADS=1 .venv/bin/recsys train --data ml-100k --out artifacts-trainonly --no-refit
    OMP_NUM_THREADS=1 .venv/bin/python bench/quiz_sampling.py --artifact artifacts-trainonly --data ml-100k

Prints "will like" HR@10 (targets rated >= 4) on VALIDATION for every (pool size = the n most
rated movies, dislike weight, rounds), each the mean of ``quiz.SEEDS`` draws, the choice (best
sum over 1 and 3 rounds, as ``recsys train`` makes it), and TEST for the choice beside the
gateway's defaults (floor 50: its sample_min_ratings; weight: the artifact's dislike_weight) and
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
    counts = val.history.sum(0).numpy()
    pools = [n for n in Q.POOL_SIZES if n <= int((counts > 0).sum())]
    floor = {n: Q.floor_for(counts, n) for n in pools}
    res = Q.grid(art.model, emb, p, val, form, sorted(set(floor.values())), seed=args.seed)
    print(f"{p.name}, form {form}, VALIDATION ({len(val.users)} users): will-like HR@10 (no answer), "
          f"mean of {Q.SEEDS} draws\n")  # fmt: skip
    print("| pool (floor) | dislike weight | 1 round | 3 rounds |\n|---|---|---|---|")
    for n in pools:
        for w in Q.WEIGHTS:
            a, b = res[(floor[n], w, 1)], res[(floor[n], w, 3)]
            print(f"| {n} ({floor[n]}) | {w:g} | {a['like/hr@10']:.4f} ({a['no_answer']:.0f}) | "
                  f"{b['like/hr@10']:.4f} ({b['no_answer']:.0f}) |")  # fmt: skip
    n_best, w_best = max(
        ((n, w) for n in pools for w in Q.SERVED_WEIGHTS),
        key=lambda nw: (
            res[(floor[nw[0]], nw[1], 1)]["like/hr@10"] + res[(floor[nw[0]], nw[1], 3)]["like/hr@10"]
        ),
    )
    best = (floor[n_best], w_best)
    default = (50, float(art.model.cfg.dislike_weight))
    print(f"\nchosen on VALIDATION: pool {n_best} (floor {best[0]}), dislike weight {best[1]:g} "
          f"(default floor/weight {default})\n")  # fmt: skip
    pop_val = E.evaluate_scorer(val, B.fit_popular(val.history))
    pop_test = E.evaluate_scorer(test, B.fit_popular(test.history))
    print(
        "| quiz | valid like/HR@10 | test like/HR@10 | test HR@10 | test no answer |\n|---|---|---|---|---|"
    )
    for name, (f, w) in (("chosen", best), ("default", default)):
        for r in (1, 3):
            t = Q.grid(art.model, emb, p, test, form, [f], [w], [r], seed=args.seed)[(f, w, r)]
            v = (
                res.get((f, w, r))
                or Q.grid(art.model, emb, p, val, form, [f], [w], [r], seed=args.seed)[(f, w, r)]
            )
            print(f"| {name} (floor {f}, weight {w:g}), {r} round(s) | {v['like/hr@10']:.4f} | "
                  f"{t['like/hr@10']:.4f} | {t['hr@10']:.4f} | {t['no_answer']:.0f} |")  # fmt: skip
    print(f"| most popular | {pop_val['like/hr@10']:.4f} | {pop_test['like/hr@10']:.4f} | "
          f"{pop_test['hr@10']:.4f} | – |")  # fmt: skip


if __name__ == "__main__":
    main()
