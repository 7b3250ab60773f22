"""Offline evaluation on a global time split (issue #14 item 6).

Leave-last-out (:mod:`recsys_embedder.training.data`) holds out each user's own last event,
so a model may train on events that happened after another user's target. Here one global
cutoff separates the past from the future:

- **Cutoff**: with the ``n`` events' timestamps sorted, ``cutoff = ts[k]``, ``k = ceil(q n)``
  (0-based, clamped to ``1..n-1``), ``q`` = ``quantile`` (default 0.9). An event is *before*
  when ``timestamp < cutoff`` and *after* otherwise: exactly ``k`` events (a fraction ``q``)
  are before, fewer when events tie at the cutoff's timestamp.
- **Target**: per user, the FIRST event at/after the cutoff (events ordered by (timestamp,
  movie id), as leave-last-out orders them). Users with >= 1 event before and >= 1 after are
  evaluated (the counts of each kind of user are reported). Every movie is ranked except those
  the user rated before the cutoff; HR@10 and NDCG@10 as :mod:`.metrics` computes them, for
  every target ("will watch") and for the targets rated >= 4 ("will like", those users only).
- **Models** see only events before the cutoff:
  PinSage is trained (:func:`recsys_embedder.training.train.train`) on a view of the data set
  holding only those events, re-split by leave-last-out so early stopping (VALIDATION) uses
  pre-cutoff events too; users are then scored from their whole pre-cutoff sequence. Baselines
  are fitted on every pre-cutoff event: most popular, recent popular (counts weighted by
  ``0.5 ** ((cutoff - t) / half_life)``, half-life 30 days, the two-tower evaluation's weighting
  (:func:`recsys_embedder.training.two_tower.event_weights`) measured from the cutoff, which ranks
  the same), item-kNN (cosine) and EASE (lambda chosen on the pre-cutoff view's VALIDATION).

PinSage's network and graph see the view's TRAIN events (each user's last two pre-cutoff
events are its VALIDATION/TEST), while the baselines fit every pre-cutoff event: the same
asymmetry as the leave-last-out TEST phase, one event wider (no refit).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recsys_embedder.evaluation import baselines as B
from recsys_embedder.evaluation.evaluate import (
    EASE_LAMBDAS,
    Phase,
    evaluate_scorer,
    make_phase,
    pinsage_scorer,
    rank_phase,
)
from recsys_embedder.evaluation.metrics import metrics_from_ranks
from recsys_embedder.evaluation.two_tower import RECENT_POPULAR_HALF_LIFE_DAYS
from recsys_embedder.signals import LIKE_AT_LEAST
from recsys_embedder.training.data import TEST, Prepared, split_labels
from recsys_embedder.training.train import TrainConfig, train
from recsys_embedder.training.two_tower import event_weights

DEFAULT_QUANTILE = 0.9
Log = Callable[[str], None]


def temporal_cutoff(timestamps: np.ndarray, quantile: float = DEFAULT_QUANTILE) -> int:
    """``sorted(timestamps)[k]``, ``k = ceil(quantile * n)`` clamped to ``1..n-1``: the events
    strictly before it are a fraction ``quantile`` of all (fewer when events tie at it)."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    ts = np.sort(np.asarray(timestamps, dtype=np.int64))
    if len(ts) < 2:
        raise ValueError("a time split needs at least 2 events")
    k = min(max(math.ceil(quantile * len(ts)), 1), len(ts) - 1)
    return int(ts[k])


@dataclass(frozen=True)
class TemporalSplit:
    """Who is evaluated on what (rows of a :class:`Prepared`)."""

    quantile: float
    cutoff: int
    before: np.ndarray  # bool per event: timestamp < cutoff
    users: np.ndarray  # evaluated user rows (>= 1 event before and >= 1 at/after), ascending
    targets: np.ndarray  # item row of each evaluated user's first event at/after the cutoff
    target_ratings: np.ndarray  # float32, its rating
    target_times: np.ndarray  # int64, its timestamp
    counts: dict[str, int]

    def history(self, p: Prepared) -> torch.Tensor:
        """Binary (n_users, n_items) of the pre-cutoff events (what is seen and excluded)."""
        b = self.before
        return B.binary_matrix(p.u[b], p.i[b], p.n_users, p.n_items)

    def phase(self, p: Prepared) -> Phase:
        # upto=TEST: PinSage's histories are every event of the pre-cutoff view
        return Phase(
            "temporal", torch.as_tensor(self.users), torch.as_tensor(self.targets), self.history(p), TEST
        )

    def score(self, phase: Phase, scorer: B.Scorer) -> dict[str, float]:
        """Will-watch metrics of ``scorer`` plus ``like/...`` over the targets rated >= 4."""
        ranks = rank_phase(phase, scorer)
        out = metrics_from_ranks(ranks)
        liked = torch.as_tensor(self.target_ratings >= LIKE_AT_LEAST)
        out.update({f"like/{k}": v for k, v in metrics_from_ranks(ranks[liked]).items()})
        out["users"] = float(len(ranks))
        out["like/users"] = float(int(liked.sum()))
        return out


def temporal_split(
    p: Prepared, quantile: float = DEFAULT_QUANTILE, cutoff: int | None = None
) -> TemporalSplit:
    """The cutoff (see the module doc; or the given ``cutoff``) and each user's target."""
    if cutoff is None:
        cutoff = temporal_cutoff(p.t, quantile)
    before = p.t < cutoff
    n_before = np.bincount(p.u[before], minlength=p.n_users)
    n_after = np.bincount(p.u[~before], minlength=p.n_users)
    # first event at/after the cutoff per user, by (timestamp, movie id)
    after = np.flatnonzero(~before)
    after = after[np.lexsort((p.movie_ids[p.i[after]], p.t[after], p.u[after]))]
    first_users, first_at = np.unique(p.u[after], return_index=True)
    first = after[first_at]
    ok = n_before[first_users] > 0
    users, first = first_users[ok], first[ok]
    targets = p.i[first]
    ratings = p.r[first].astype(np.float32)
    has_b, has_a = n_before > 0, n_after > 0
    counts = {
        "events": len(p.t),
        "events_before": int(before.sum()),
        "events_after": int((~before).sum()),
        "users": p.n_users,
        "users_before_and_after": int((has_b & has_a).sum()),
        "users_before_only": int((has_b & ~has_a).sum()),
        "users_after_only": int((~has_b & has_a).sum()),
        "users_evaluated": len(users),
        "users_like": int((ratings >= LIKE_AT_LEAST).sum()),
    }
    return TemporalSplit(
        quantile, int(cutoff), before, users, targets, ratings, p.t[first].astype(np.int64), counts
    )


def pre_cutoff_view(p: Prepared, before: np.ndarray) -> Prepared:
    """``p`` with only the ``before`` events (same users and catalog rows), re-split by
    leave-last-out over them (users with < 3 pre-cutoff events are all TRAIN)."""
    u, i, r, t = p.u[before], p.i[before], p.r[before], p.t[before]
    split = split_labels(p.user_ids[u], p.movie_ids[i], t)
    return dataclasses.replace(p, u=u, i=i, r=r, t=t, split=split)


def recent_popularity(
    item_rows: np.ndarray,
    timestamps: np.ndarray,
    n_items: int,
    *,
    now: int | None = None,
    half_life_days: float = RECENT_POPULAR_HALF_LIFE_DAYS,
) -> np.ndarray:
    """Per item: the sum over its events of ``0.5 ** ((now - t) / half_life)`` (float64).

    The two-tower evaluation's weights (:func:`event_weights`, age from the newest event),
    rescaled so the age counts from ``now`` (default: the newest event, exactly those)."""
    ts = np.asarray(timestamps, dtype=np.int64)
    w = event_weights(ts, half_life_days=half_life_days)
    if now is not None and len(ts):
        w = w * np.power(0.5, (now - int(ts.max())) / (half_life_days * 86400.0))
    return np.bincount(np.asarray(item_rows, dtype=np.int64), weights=w, minlength=n_items)


def fit_recent_popular(
    item_rows: np.ndarray, timestamps: np.ndarray, n_items: int, *, now: int, half_life_days: float
) -> B.Scorer:
    pop = torch.from_numpy(
        recent_popularity(item_rows, timestamps, n_items, now=now, half_life_days=half_life_days)
    )
    pop32 = pop.to(torch.float32)
    return lambda users: pop32.unsqueeze(0).expand(len(users), -1)


def run_temporal(
    p: Prepared,
    cfg: TrainConfig,
    *,
    quantile: float = DEFAULT_QUANTILE,
    half_life_days: float = RECENT_POPULAR_HALF_LIFE_DAYS,
    forms: Iterable[str] = ("pinsage",),
    ease_lambdas: Iterable[float] = EASE_LAMBDAS,
    pinsage: bool = True,
    log: Log = print,
) -> dict[str, Any]:
    """Train/fit every model on the pre-cutoff events and rank each evaluated user's target.

    Returns ``{"quantile", "cutoff", "cutoff_iso", "half_life_days", "counts": {...},
    "models": {name: metrics (hr@10, ndcg@10, hr@20, mrr@10, users and like/... of each)},
    "params": {name: {...}}, "training": {...}}``; ``forms`` are PinSage's user forms scored
    (rows ``pinsage/<form>``)."""
    split = temporal_split(p, quantile)
    c = split.counts
    cutoff_iso = dt.datetime.fromtimestamp(split.cutoff, tz=dt.UTC).isoformat()
    log(
        f"cutoff {cutoff_iso} (q={quantile}): {c['events_before']} events before, {c['events_after']} after; "
        f"{c['users_evaluated']} users evaluated ({c['users_before_only']} only before, "
        f"{c['users_after_only']} only after)"
    )
    phase = split.phase(p)
    view = pre_cutoff_view(p, split.before)
    models: dict[str, dict[str, float]] = {}
    params: dict[str, dict[str, Any]] = {}
    hist = phase.history
    b = split.before

    t0 = time.perf_counter()
    models["popular"] = split.score(phase, B.fit_popular(hist))
    params["popular"] = {}
    models["recent-popular"] = split.score(
        phase, fit_recent_popular(p.i[b], p.t[b], p.n_items, now=split.cutoff, half_life_days=half_life_days)
    )
    params["recent-popular"] = {"half_life_days": half_life_days, "age_from": "cutoff"}
    models["item-knn"] = split.score(phase, B.fit_itemknn(hist))
    params["item-knn"] = {"similarity": "cosine"}
    val = make_phase(view, "validation")
    grid = list(ease_lambdas)
    ease_val = {lam: evaluate_scorer(val, B.fit_ease(val.history, lam)) for lam in grid}
    lam = max(grid, key=lambda v: (ease_val[v]["hr@10"], ease_val[v]["ndcg@10"]))
    models["ease"] = split.score(phase, B.fit_ease(hist, lam))
    params["ease"] = {"lambda": lam, "grid": grid, "chosen_on": "pre-cutoff leave-last-out VALIDATION"}
    log(f"baselines (ease lambda={lam:g}): {time.perf_counter() - t0:.1f}s")

    training: dict[str, Any] = {}
    if pinsage:
        res = train(view, cfg, log=log, progress=False)
        emb = torch.from_numpy(res.item_embeddings)
        for form in forms:
            models[f"pinsage/{form}"] = split.score(phase, pinsage_scorer(res.model, emb, view, phase, form))
            params[f"pinsage/{form}"] = {"best_epoch": res.best_epoch}
        training = {
            "best_epoch": res.best_epoch,
            "epochs_run": len(res.history),
            "best_validation_hr@10": res.best_validation_hr10,
            "seconds": round(res.training_time_s, 1),
            "config": cfg.to_json(),
        }
    return {
        "quantile": quantile,
        "cutoff": split.cutoff,
        "cutoff_iso": cutoff_iso,
        "half_life_days": half_life_days,
        "counts": c,
        "models": models,
        "params": params,
        "training": training,
    }


def format_temporal_table(results: dict[str, Any]) -> str:
    """Markdown: one line on the split, then HR@10/NDCG@10 per model, will-watch rows (every
    evaluated user) then will-like rows (targets rated >= 4)."""
    c = results["counts"]
    lines = [
        f"cutoff {results['cutoff_iso']} (quantile {results['quantile']:g}): "
        f"{c['events_before']} of {c['events']} events before it; {c['users_evaluated']} users "
        f"evaluated (>= 1 event before and >= 1 after; {c['users_before_only']} users only "
        f"before, {c['users_after_only']} only after), {c['users_like']} of them with a target "
        f"rated >= {LIKE_AT_LEAST:g}",
        "",
        "| model | target | users | HR@10 | NDCG@10 |",
        "|---|---|---|---|---|",
    ]
    for target, prefix, n in (
        ("will watch", "", c["users_evaluated"]),
        ("will like", "like/", c["users_like"]),
    ):
        for name, m in results["models"].items():
            hr, ndcg = m.get(prefix + "hr@10", 0.0), m.get(prefix + "ndcg@10", 0.0)
            lines.append(f"| {name} | {target} | {n} | {hr:.4f} | {ndcg:.4f} |")
    return "\n".join(lines)


# ---- the serving popularity rule, chosen on a time split ------------------------
#: Candidate half-lives (days) of the recency-weighted count.
POPULARITY_HALF_LIVES: tuple[float, ...] = (1.0, 3.0, 7.0, 14.0, 30.0, 60.0, 120.0, 365.0, 1095.0)
#: The catalog's default Bayesian prior weight C (``RECSYS_CATALOG_BAYES_PRIOR_WEIGHT``).
BAYES_PRIOR_WEIGHT = 25.0


def popularity_scorers(
    p: Prepared,
    events: np.ndarray,
    now: int,
    *,
    half_lives: Iterable[float] = POPULARITY_HALF_LIVES,
    prior_weight: float = BAYES_PRIOR_WEIGHT,
) -> dict[str, tuple[dict[str, Any], B.Scorer]]:
    """Every candidate rule of catalog GetPopular fitted on the ``events`` (bool mask), as the
    catalog computes it: ``most_rated`` (count), ``bayesian_average`` ((sum + C*mean) / (n + C), C =
    ``prior_weight``, mean over the events), ``recent/<h>`` (sum of ``0.5 ** (age / h days)``,
    age from ``now``). Ties break on the count (as the catalog's ORDER BY does)."""
    i, r = p.i[events], p.r[events].astype(np.float64)
    count = np.bincount(i, minlength=p.n_items).astype(np.float64)
    total = np.bincount(i, weights=r, minlength=p.n_items)
    tie = count / (count.max() + 1.0) * 1e-6  # below any difference of the primary scores

    def scorer(score: np.ndarray) -> B.Scorer:
        s = torch.from_numpy(score).to(torch.float64)
        s32 = (s / s.max().clamp(min=1e-300)).to(torch.float32)
        return lambda users: s32.unsqueeze(0).expand(len(users), -1)

    mean = float(r.mean()) if len(r) else 0.0
    bayes = np.where(count > 0, (total + prior_weight * mean) / (count + prior_weight), 0.0)
    out: dict[str, tuple[dict[str, Any], B.Scorer]] = {
        "most_rated": ({"ranking": "most_rated"}, scorer(count)),
        "bayesian_average": (
            {"ranking": "bayesian_average", "prior_weight": prior_weight},
            scorer(bayes / 5.0 + tie),
        ),
    }
    for h in half_lives:
        rec = recent_popularity(i, p.t[events], p.n_items, now=now, half_life_days=h)
        rec = rec / max(float(rec.max()), 1e-300)
        out[f"recent/{h:g}"] = ({"ranking": "recent", "half_life_days": float(h)}, scorer(rec + tie))
    return out


def choose_popularity(
    p: Prepared,
    *,
    quantile: float = DEFAULT_QUANTILE,
    half_lives: Iterable[float] = POPULARITY_HALF_LIVES,
    prior_weight: float = BAYES_PRIOR_WEIGHT,
) -> dict[str, Any]:
    """The rule the no-signal fallback serves (catalog GetPopular), chosen on a time split.

    VALIDATION: the time split (``quantile``) of the events before TEST's cutoff, i.e. a cutoff
    inside the past; TEST: the time split of all events (``temporal_split(p, quantile)``). Each
    candidate of :func:`popularity_scorers` is fitted on the events before the split's cutoff
    and ranks each evaluated user's first event after it, the user's earlier movies excluded.
    Rule: highest will-watch HR@10 on VALIDATION, then NDCG@10, then the candidate listed first
    (most_rated, bayesian_average, shorter half-lives). Returns ``{"ranking", "half_life_days" (recent
    only), "chosen_on", "validation": {name: metrics}, "test": {name: metrics}, "counts":
    {"validation": ..., "test": ...}}``."""
    half_lives = tuple(half_lives)
    outer = temporal_split(p, quantile)
    past = pre_cutoff_view(p, outer.before)
    inner = temporal_split(past, quantile)
    results: dict[str, dict[str, dict[str, float]]] = {}
    params: dict[str, dict[str, Any]] = {}
    for phase_name, data, split in (("validation", past, inner), ("test", p, outer)):
        phase = split.phase(data)
        cands = popularity_scorers(
            data, split.before, split.cutoff, half_lives=half_lives, prior_weight=prior_weight
        )
        results[phase_name] = {name: split.score(phase, sc) for name, (_, sc) in cands.items()}
        params = {name: prm for name, (prm, _) in cands.items()}
    val = results["validation"]
    order = list(val)
    best = max(order, key=lambda n: (val[n]["hr@10"], val[n]["ndcg@10"], -order.index(n)))
    chosen = dict(params[best])
    return {
        **chosen,
        "name": best,
        "chosen_on": (
            f"time split VALIDATION (cutoff at quantile {quantile:g} of the events before TEST's "
            f"cutoff; {inner.counts['users_evaluated']} users), highest will-watch HR@10 then NDCG@10"
        ),
        "validation": results["validation"],
        "test": results["test"],
        "counts": {"validation": inner.counts, "test": outer.counts},
        "cutoffs": {"validation": inner.cutoff, "test": outer.cutoff},
    }


def popularity_summary(choice: dict[str, Any]) -> str:
    """One line: the chosen rule and its VALIDATION/TEST will-watch HR@10 against most rated."""
    name = choice["name"]
    v, t = choice["validation"], choice["test"]
    return (
        f"popular by {name} (time-split HR@10 VALIDATION {v[name]['hr@10']:.3f}, "
        f"TEST {t[name]['hr@10']:.3f}; "
        f"most rated {v['most_rated']['hr@10']:.3f} / {t['most_rated']['hr@10']:.3f})"
    )


def format_popularity_table(choice: dict[str, Any]) -> str:
    """Markdown: every popularity candidate's HR@10 / NDCG@10 on the VALIDATION and TEST time
    splits, will watch and will like, the chosen one marked."""
    cv, ct = choice["counts"]["validation"], choice["counts"]["test"]
    lines = [
        f"VALIDATION: {cv['users_evaluated']} users ({cv['users_like']} will-like); "
        f"TEST: {ct['users_evaluated']} users ({ct['users_like']} will-like); chosen: {choice['name']}",
        "",
        "| rule | VALIDATION HR@10 / NDCG@10 | will like | TEST HR@10 / NDCG@10 | will like |",
        "|---|---|---|---|---|",
    ]
    for name in choice["validation"]:
        v, t = choice["validation"][name], choice["test"][name]
        mark = " (chosen)" if name == choice["name"] else ""
        lines.append(
            f"| {name}{mark} | {v['hr@10']:.4f} / {v['ndcg@10']:.4f} | {v['like/hr@10']:.4f} / "
            f"{v['like/ndcg@10']:.4f} | {t['hr@10']:.4f} / {t['ndcg@10']:.4f} | "
            f"{t['like/hr@10']:.4f} / {t['like/ndcg@10']:.4f} |"
        )
    return "\n".join(lines)
