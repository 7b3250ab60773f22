"""``recsys evaluate --through HOST:PORT``: the running stack, scored through the gateway's public
API the way callers use it, beside the offline numbers of the same artifact (issue #14).

The protocol is the offline one (leave-last-out, :mod:`recsys_embedder.training.data`): for every
user with a TEST event, the request carries (or the catalog holds) the user's TRAIN+VALIDATION
events, and the held-out TEST movie is the target. The stack must therefore hold exactly that:
bring it up on ``recsys data holdout SOURCE --out DIR`` and evaluate on SOURCE (the artifact's
manifest says it trained on that hold-out; see ``reportable_phases`` in ``evaluation.cli``).

Request forms (each one Recommend call per user, k = 10, seen movies excluded by the gateway):

- ``user_id``: the history is read from the catalog;
- ``liked+ratings+times``: the history as ``liked`` with ratings and ``rated_at``;
- ``liked+times``: the same with ``rated_at`` only (no ratings);
- ``ordered``: the same, oldest first, neither ratings nor ``rated_at`` (the list order is the
  event order: as the quiz and most back ends send it);
- ``quiz x1`` / ``quiz x3``: the web app's quiz: SampleMovies as the web app calls it (16
  movies, the gateway's popularity floor), "like" the shown movies the user rated >= 4 in the
  history, "dislike" those rated <= 2, skip the rest; ``x3`` asks for up to two more rounds of
  16 not shown before ("show other movies"). A user who answered nothing gets no
  recommendation (the web app refuses an empty quiz): a miss, counted in ``no answer``. The
  quiz cannot know the rest of the history, so its request asks for 100 results and the
  evaluator drops the user's seen movies before the top 10 (as for every other row). One draw
  of 16 movies per user moves will-like HR@10 by about 0.01, so every user takes the quiz
  ``--quiz-draws`` times (independent SampleMovies seeds; default 3) and the quiz rows average
  over the draws (``no answer``: per draw).

``liked`` forms send the newest 1,000 events (the gateway's limit). Each form's offline column
is the artifact scored on exactly the signal that form sends (ratings, order, the served
low-rating rule, what is excluded), so ``served - offline`` isolates the serving path. The
most-popular baseline (fitted on the same history, seen movies excluded) runs in the same
command. Metrics: HR@10 and NDCG@10 for "will watch" (every target) and "will like" (targets
rated >= 4).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import torch
from google.protobuf.timestamp_pb2 import Timestamp
from recsys.common.v1 import common_pb2
from recsys.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from recsys_core.client import open_channel

from recsys_embedder import artifacts as A
from recsys_embedder.evaluation import baselines as B
from recsys_embedder.evaluation import evaluate as E
from recsys_embedder.signals import LIKE_AT_LEAST
from recsys_embedder.training import data as D

K = 10
LIKED_LIMIT = 1000  # RecommendRequest.liked: at most 1000 movies (gateway.proto)
QUIZ_SIZE = 16  # the web app's quiz_size default
QUIZ_DISLIKE_AT_MOST = 2.0
# The quiz knows only its answers, so its results include movies the user saw but was never asked
# about. The evaluator knows the history: it asks for QUIZ_K results and drops the seen ones before
# taking the top K, as every other row ("seen movies excluded") and the popular baseline do.
QUIZ_K = 100
FORMS: tuple[str, ...] = ("user_id", "liked+ratings+times", "liked+times", "ordered", "quiz x1", "quiz x3")
GATEWAY = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("served evaluation (--through)")
    g.add_argument(
        "--through",
        default=None,
        metavar="HOST:PORT",
        help="evaluate the running stack through this gateway (its public API), beside the offline "
        "numbers; the stack must hold `recsys data holdout` of --data",
    )
    g.add_argument("--forms", default=",".join(FORMS), help=f"request forms (default: {','.join(FORMS)})")
    g.add_argument("--concurrency", type=int, default=8, help="requests in flight (default 8)")
    g.add_argument("--max-users", type=int, default=0, help="evaluate the first N TEST users only (0 = all)")
    g.add_argument("--deadline", type=float, default=30.0, help="seconds per call (default 30)")
    g.add_argument("--api-key", default=None, help="x-api-key for a gateway that requires one")
    g.add_argument(
        "--quiz-min-ratings",
        type=int,
        default=None,
        help="SampleMovies.min_ratings of the simulated quiz (default: unset, the gateway's floor, "
        "as the web app calls it); bench/quiz_sampling.py chooses one on VALIDATION",
    )
    g.add_argument(
        "--quiz-draws",
        type=int,
        default=3,
        help="times each user takes the simulated quiz, with independent draws (default 3)",
    )


@dataclass
class Case:
    """One TEST user: the history the stack holds, and the held-out movie."""

    user_id: int
    movies: np.ndarray  # movie ids, oldest -> newest (TRAIN+VALIDATION events)
    ratings: np.ndarray
    times: np.ndarray
    target: int  # movie id
    target_rating: float


@dataclass
class FormResult:
    ranks: list[int] = field(default_factory=list)  # rank of the target per case (-1 = not in top K)
    errors: dict[str, int] = field(default_factory=dict)
    no_answer: int = 0
    seconds: float = 0.0


def cases_of(p: D.Prepared, max_users: int = 0) -> list[Case]:
    seqs = p.sequences(D.VALID)
    tgt = p.targets(D.TEST)
    rating = np.zeros(p.n_users, np.float32)
    on = p.split == D.TEST
    rating[p.u[on]] = p.r[on]
    rows = np.flatnonzero(tgt >= 0)
    if max_users:
        rows = rows[:max_users]
    return [
        Case(
            int(p.user_ids[u]),
            p.movie_ids[seqs[u][0]],
            seqs[u][1],
            seqs[u][2],
            int(p.movie_ids[tgt[u]]),
            float(rating[u]),
        )
        for u in rows
    ]


def _ts(seconds: int) -> Timestamp:
    t = Timestamp()
    t.FromSeconds(int(seconds))
    return t


def liked_request(c: Case, form: str) -> gateway_pb2.RecommendRequest:
    n = min(len(c.movies), LIKED_LIMIT)
    sl = slice(len(c.movies) - n, None)
    liked = []
    for m, r, t in zip(c.movies[sl], c.ratings[sl], c.times[sl], strict=True):
        if form == "liked+ratings+times":
            liked.append(common_pb2.RatedMovie(movie_id=int(m), rating=float(r), rated_at=_ts(t)))
        elif form == "liked+times":
            liked.append(common_pb2.RatedMovie(movie_id=int(m), rated_at=_ts(t)))
        else:
            liked.append(common_pb2.RatedMovie(movie_id=int(m)))
    return gateway_pb2.RecommendRequest(liked=liked, k=K)


def quiz_seed(user_id: int, rnd: int, draw: int = 0) -> int:
    """A stable, non-zero SampleMovies seed per (user, round, draw)."""
    key = f"quiz:{user_id}:{rnd}" if draw == 0 else f"quiz:{user_id}:{rnd}:{draw}"
    return zlib.crc32(key.encode()) + 1


def quiz_answers(c: Case, shown: Sequence[int]) -> tuple[list[int], list[int]]:
    known = dict(zip(c.movies.tolist(), c.ratings.tolist(), strict=True))
    liked = [m for m in shown if m in known and known[m] >= LIKE_AT_LEAST]
    disliked = [m for m in shown if m in known and known[m] <= QUIZ_DISLIKE_AT_MOST]
    return liked, disliked


def rank_of(ids: Sequence[int], target: int) -> int:
    for k, m in enumerate(ids[:K]):
        if m == target:
            return k
    return -1


def metrics(ranks: Sequence[int], cases: Sequence[Case]) -> dict[str, float]:
    def agg(sel: list[int]) -> tuple[float, float]:
        if not sel:
            return 0.0, 0.0
        hr = sum(1 for r in sel if r >= 0) / len(sel)
        nd = sum(1.0 / math.log2(r + 2) for r in sel if r >= 0) / len(sel)
        return hr, nd

    like = [r for r, c in zip(ranks, cases, strict=True) if c.target_rating >= LIKE_AT_LEAST]
    hr, nd = agg(list(ranks))
    lhr, lnd = agg(like)
    return {"hr@10": hr, "ndcg@10": nd, "like/hr@10": lhr, "like/ndcg@10": lnd, "users": float(len(ranks)),
            "like/users": float(len(like))}  # fmt: skip


class Served:
    """The gateway, called as a client would (long-lived channel, deadline, bounded concurrency)."""

    def __init__(
        self,
        target: str,
        concurrency: int,
        deadline: float,
        api_key: str | None,
        quiz_min_ratings: int | None = None,
    ) -> None:
        self.quiz_min_ratings = quiz_min_ratings
        self.channel = open_channel(
            target, service=GATEWAY, idempotent_methods=("Recommend", "SampleMovies"), max_attempts=5
        )
        self.stub = gateway_pb2_grpc.GatewayStub(self.channel)
        self.sem = asyncio.Semaphore(concurrency)
        self.deadline = deadline
        self.metadata = (("x-api-key", api_key),) if api_key else None
        self.versions: set[str] = set()

    async def recommend(self, req: gateway_pb2.RecommendRequest) -> list[int]:
        async with self.sem:
            resp = await self.stub.Recommend(req, timeout=self.deadline, metadata=self.metadata)
        if resp.model_version:  # empty for the popular fallback
            self.versions.add(resp.model_version)
        return [r.movie.movie_id for r in resp.recommendations]

    async def sample(self, user_id: int, rnd: int, exclude: Sequence[int], draw: int = 0) -> list[int]:
        req = gateway_pb2.SampleMoviesRequest(
            n=QUIZ_SIZE, seed=quiz_seed(user_id, rnd, draw), exclude_ids=list(exclude)
        )
        if self.quiz_min_ratings is not None:
            req.min_ratings = self.quiz_min_ratings
        async with self.sem:
            resp = await self.stub.SampleMovies(req, timeout=self.deadline, metadata=self.metadata)
        return [m.movie_id for m in resp.movies]

    async def quiz(
        self, c: Case, rounds: int, draw: int = 0
    ) -> tuple[list[int], list[int], list[int] | None]:
        """(liked, disliked, recommended ids or None when nothing was answered)."""
        shown: list[int] = []
        liked: list[int] = []
        disliked: list[int] = []
        for rnd in range(rounds):
            batch = await self.sample(c.user_id, rnd, shown, draw)
            shown += batch
            lk, dk = quiz_answers(c, batch)
            liked += lk
            disliked += dk
        if not liked and not disliked:
            return liked, disliked, None
        req = gateway_pb2.RecommendRequest(
            liked=[common_pb2.RatedMovie(movie_id=m) for m in liked], disliked_movie_ids=disliked, k=QUIZ_K
        )
        seen = set(c.movies.tolist())
        return liked, disliked, [m for m in await self.recommend(req) if m not in seen]

    async def close(self) -> None:
        await self.channel.close()


def form_cases(form: str, cases: Sequence[Case], quiz_draws: int) -> list[tuple[Case, int]]:
    """``(case, draw)`` per request of ``form``: quiz forms take every user ``quiz_draws`` times."""
    draws = max(quiz_draws, 1) if form.startswith("quiz") else 1
    return [(c, d) for d in range(draws) for c in cases]


async def run_form(
    srv: Served,
    form: str,
    cases: Sequence[Case],
    quiz_signals: dict[str, list[tuple[list[int], list[int]]]],
    quiz_draws: int = 1,
) -> FormResult:
    runs = form_cases(form, cases, quiz_draws)
    res = FormResult(ranks=[-1] * len(runs))
    t0 = time.perf_counter()
    signals: list[tuple[list[int], list[int]]] = [([], [])] * len(runs)

    async def one(k: int, c: Case, draw: int) -> None:
        try:
            if form == "user_id":
                ids = await srv.recommend(gateway_pb2.RecommendRequest(user_id=c.user_id, k=K))
            elif form.startswith("quiz"):
                liked, disliked, got = await srv.quiz(c, 3 if form.endswith("x3") else 1, draw)
                signals[k] = (liked, disliked)
                if got is None:
                    res.no_answer += 1
                    return
                ids = got
            else:
                ids = await srv.recommend(liked_request(c, form))
        except grpc.aio.AioRpcError as exc:
            name = exc.code().name
            res.errors[name] = res.errors.get(name, 0) + 1
            if len(res.errors) == 1 and res.errors[name] == 1:
                print(f"served {form}: user {c.user_id}: {name}: {exc.details()}", file=sys.stderr)
            return
        res.ranks[k] = rank_of(ids, c.target)

    await asyncio.gather(*(one(k, c, d) for k, (c, d) in enumerate(runs)))
    res.seconds = time.perf_counter() - t0
    if form.startswith("quiz"):
        quiz_signals[form] = signals
    return res


# ---- offline, on exactly what each form sends ---------------------------------------------
def _row_of(p: D.Prepared) -> dict[int, int]:
    return {int(m): k for k, m in enumerate(p.movie_ids)}


def offline_ranks(
    art: A.Artifact,
    p: D.Prepared,
    cases: Sequence[Case],
    form: str,
    quiz: list[tuple[list[int], list[int]]] | None = None,
) -> list[int]:
    """Rank of each case's target when the artifact scores what ``form`` sends (-1: not in top K)."""
    model, emb = art.model, torch.from_numpy(art.item_embeddings)
    model.eval()
    row = _row_of(p)
    seqs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    excluded: list[np.ndarray] = []
    quiz_seen: list[np.ndarray] = []
    for k, c in enumerate(cases):
        items = np.array([row[int(m)] for m in c.movies], np.int64)
        if form.startswith("quiz"):
            liked, disliked = quiz[k] if quiz else ([], [])
            li = np.array([row[m] for m in liked], np.int64)
            seqs.append((li, np.zeros(len(li), np.float32), np.zeros(len(li), np.int64)))
            # the served top QUIZ_K minus the seen movies (see QUIZ_K)
            excluded.append(np.array([row[m] for m in liked + disliked], np.int64))
            quiz_seen.append(items)
            continue
        if form.startswith("liked") or form == "ordered":
            items = items[-LIKED_LIMIT:]
            sl = slice(len(c.movies) - len(items), None)
            r = c.ratings[sl] if form == "liked+ratings+times" else np.zeros(len(items), np.float32)
            seqs.append((items, np.where(r > 0, r, 0.0).astype(np.float32), c.times[sl]))
            excluded.append(items)
        else:  # user_id: the catalog's whole history
            seqs.append((items, c.ratings, c.times))
            excluded.append(items)
    from recsys_embedder.signals import effective_ratings

    seqs = [(i, effective_ratings(r), t) for i, r, t in seqs]
    with torch.no_grad():
        uv = E.user_vectors(model, emb, seqs, art.default_form, rule=art.history_rule)
        if form.startswith("quiz") and quiz:
            dis = [np.array([row[m] for m in d], np.int64) for _, d in quiz]
            has_like = [len(s[0]) > 0 for s in seqs]
            uv = torch.stack(
                [u if h else torch.zeros_like(u) for u, h in zip(uv, has_like, strict=True)]
            )  # a quiz of dislikes only: the query is the dislikes pushed away from nothing
            uv = E.push_away(uv, emb, dis, model.cfg.dislike_weight)
        scores = uv @ emb.T
    out = []
    for k, c in enumerate(cases):
        if form.startswith("quiz") and quiz and not quiz[k][0] and not quiz[k][1]:
            out.append(-1)
            continue
        s = scores[k].clone()
        if len(excluded[k]):
            s[torch.as_tensor(excluded[k])] = -math.inf
        if form.startswith("quiz"):
            seen = set(quiz_seen[k].tolist())
            best = torch.topk(s, min(QUIZ_K, len(s)))
            top = [i for i, v in zip(best.indices.tolist(), best.values.tolist(), strict=True)
                   if i not in seen and v > -math.inf]  # fmt: skip
        else:
            top = torch.topk(s, K).indices.tolist()
        out.append(rank_of(top, row[c.target]))
    return out


def popular_ranks(p: D.Prepared, cases: Sequence[Case]) -> list[int]:
    """Most popular on the same history (TRAIN+VALIDATION), each user's seen movies excluded."""
    phase = E.make_phase(p, "test")
    scorer = B.fit_popular(phase.history)
    uid_row = {int(u): k for k, u in enumerate(p.user_ids)}
    rows = torch.as_tensor([uid_row[c.user_id] for c in cases], dtype=torch.int64)
    scores = scorer(rows).to(torch.float32).clone()
    scores[phase.history[rows] > 0] = -math.inf
    row = _row_of(p)
    return [rank_of(torch.topk(scores[k], K).indices.tolist(), row[c.target]) for k, c in enumerate(cases)]


# ---- the command -------------------------------------------------------------------------
def format_rows(rows: list[dict[str, Any]]) -> str:
    head = ["request form", "served HR@10", "offline HR@10", "served NDCG@10", "offline NDCG@10",
            "served like/HR@10", "offline like/HR@10", "served like/NDCG@10", "errors", "no answer",
            "req/s"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def f(d: dict[str, float] | None, m: str) -> str:
        return f"{d[m]:.4f}" if d and m in d else "–"

    for r in rows:
        s, o = r.get("served"), r.get("offline")
        cells = [r["form"], f(s, "hr@10"), f(o, "hr@10"), f(s, "ndcg@10"), f(o, "ndcg@10"),
                 f(s, "like/hr@10"), f(o, "like/hr@10"), f(s, "like/ndcg@10"),
                 str(sum(r.get("errors", {}).values())) if s else "–",
                 str(r.get("no_answer", "–")) if s else "–",
                 f"{r['rps']:.0f}" if r.get("rps") else "–"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def evaluate_served(
    target: str,
    art: A.Artifact,
    p: D.Prepared,
    forms: Sequence[str],
    *,
    concurrency: int = 8,
    max_users: int = 0,
    deadline: float = 30.0,
    api_key: str | None = None,
    quiz_min_ratings: int | None = None,
    quiz_draws: int = 1,
    log: Any = print,
) -> dict[str, Any]:
    """``{"rows": [...], "users": n, "model_versions": [...]}``: one row per form plus popular."""
    cases = cases_of(p, max_users)
    srv = Served(target, concurrency, deadline, api_key, quiz_min_ratings)
    quiz: dict[str, list[tuple[list[int], list[int]]]] = {}
    rows: list[dict[str, Any]] = []
    try:
        for form in forms:
            res = await run_form(srv, form, cases, quiz, quiz_draws)
            fcases = [c for c, _ in form_cases(form, cases, quiz_draws)]
            draws = len(fcases) // max(len(cases), 1)
            off = offline_ranks(art, p, fcases, form, quiz.get(form))
            rows.append(
                {
                    "form": form,
                    "served": metrics(res.ranks, fcases),
                    "offline": metrics(off, fcases),
                    "errors": res.errors,
                    "no_answer": round(res.no_answer / max(draws, 1), 1),
                    "draws": draws,
                    "rps": len(fcases) / res.seconds if res.seconds else 0.0,
                    "same_hits": int(sum((a >= 0) == (b >= 0) for a, b in zip(res.ranks, off, strict=True))),
                }
            )
            sv, of = rows[-1]["served"]["hr@10"], rows[-1]["offline"]["hr@10"]
            log(f"served {form}: HR@10 {sv:.4f} (offline {of:.4f})")
    finally:
        await srv.close()
    rows.append(
        {"form": "most popular (offline, same history)", "offline": metrics(popular_ranks(p, cases), cases)}
    )
    return {"rows": rows, "users": len(cases), "model_versions": sorted(srv.versions)}


def run(args: argparse.Namespace, art: A.Artifact, p: D.Prepared, report: tuple[str, ...]) -> int:
    forms = [f.strip() for f in args.forms.split(",") if f.strip()]
    bad = [f for f in forms if f not in FORMS]
    if bad:
        print(f"recsys evaluate: unknown --forms {bad}; choose from {list(FORMS)}", file=sys.stderr)
        return 2
    if args.quiz_draws < 1:
        print(f"recsys evaluate: --quiz-draws must be >= 1, got {args.quiz_draws}", file=sys.stderr)
        return 2
    if report != ("test",):
        print(
            "recsys evaluate --through: the artifact did not train on a hold-out of this data set, so "
            "the stack's catalog cannot be told to hold exactly the TRAIN+VALIDATION events. Run "
            f"`recsys data holdout {p.name} --out DIR`, `recsys up --data DIR` (fresh --workdir and "
            f"--artifacts), then `recsys evaluate --through HOST:PORT --data {p.name} --artifact ARTIFACTS`.",
            file=sys.stderr,
        )
        return 2
    try:
        out = asyncio.run(
            evaluate_served(
                args.through, art, p, forms, concurrency=args.concurrency, max_users=args.max_users,
                deadline=args.deadline, api_key=args.api_key, quiz_min_ratings=args.quiz_min_ratings,
                quiz_draws=args.quiz_draws,
                log=lambda m: print(m, file=sys.stderr, flush=True),
            )
        )  # fmt: skip
    except grpc.aio.AioRpcError as exc:
        print(
            f"recsys evaluate: the gateway at {args.through}: {exc.code().name}: {exc.details()}",
            file=sys.stderr,
        )
        return 1
    versions = out["model_versions"]
    if versions and versions != [art.version]:
        print(
            f"recsys evaluate: the stack served model {versions}, not the artifact {art.version}: "
            "the offline column is of another model (pass the stack's --artifact)",
            file=sys.stderr,
        )
        return 2
    print(
        f"artifact {art.version} (user form {art.default_form}, low ratings: {art.history_rule.name}) "
        f"served by {args.through}; {p.name}, leave-last-out TEST, {out['users']} users, k={K}, "
        "seen movies excluded\n"
    )
    print(format_rows(out["rows"]))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return 0
