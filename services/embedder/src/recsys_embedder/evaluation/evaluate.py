"""The offline evaluation: PinSage user forms and the baselines, in one table.

Protocol: see :mod:`recsys_embedder.training.data`. For VALIDATION a model sees
each user's TRAIN events and ranks every movie except them; for TEST it sees
TRAIN+VALIDATION and ranks every movie except those. Metrics are averaged over
the users that have the event (all users with at least 3 ratings).

Two targets: the held-out event whatever its rating ("will watch": ``hr@10``, ...)
and only held-out events rated >= 4 ("will like": ``like/hr@10``, ..., averaged
over those users).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from recsys_embedder.evaluation import baselines as B
from recsys_embedder.evaluation.metrics import METRICS, metrics_from_ranks, target_ranks
from recsys_embedder.model.pinsage import USER_FORMS, PinSageNet
from recsys_embedder.signals import CANDIDATE_RULES, LIKE_AT_LEAST, HistoryRule
from recsys_embedder.training.data import TEST, VALID, Prepared

PHASES: dict[str, int] = {"validation": VALID, "test": TEST}
EASE_LAMBDAS: tuple[float, ...] = (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
Log = Callable[[str], None]


@dataclass
class Phase:
    """One evaluation phase: who is evaluated, on what, seeing which history."""

    name: str
    users: Tensor  # user rows with a target
    targets: Tensor  # item row per evaluated user
    history: Tensor  # dense binary (n_users, n_items): events the phase may use (and excludes)
    upto: int  # the history is every event with split <= upto
    target_ratings: Tensor | None = None  # rating of each target (for the "will like" rows)


def make_phase(p: Prepared, name: str) -> Phase:
    which = PHASES[name]
    upto = which - 1
    sel = p.split <= upto
    hist = B.binary_matrix(p.u[sel], p.i[sel], p.n_users, p.n_items)
    tgt = p.targets(which)
    users = np.flatnonzero(tgt >= 0)
    rat = np.zeros(p.n_users, np.float32)
    on = p.split == which
    rat[p.u[on]] = p.r[on]
    return Phase(
        name, torch.as_tensor(users), torch.as_tensor(tgt[users]), hist, upto, torch.as_tensor(rat[users])
    )


def rank_phase(phase: Phase, scorer: B.Scorer, chunk: int = 512) -> Tensor:
    out = []
    for s in range(0, len(phase.users), chunk):
        rows = phase.users[s : s + chunk]
        scores = scorer(rows).to(torch.float32)
        out.append(target_ranks(scores, phase.targets[s : s + chunk], phase.history[rows] > 0))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def metrics_two_targets(ranks: Tensor, target_ratings: Tensor | None) -> dict[str, float]:
    """Will-watch metrics (every target) plus ``like/...`` over targets rated >= 4."""
    out = metrics_from_ranks(ranks)
    if target_ratings is not None:
        liked = target_ratings >= LIKE_AT_LEAST
        out.update({f"like/{k}": v for k, v in metrics_from_ranks(ranks[liked]).items()})
        out["like/users"] = float(int(liked.sum()))
    return out


def evaluate_scorer(phase: Phase, scorer: B.Scorer) -> dict[str, float]:
    return metrics_two_targets(rank_phase(phase, scorer), phase.target_ratings)


# ---- PinSage -----------------------------------------------------------------
def padded_histories(
    seqs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], rows: Iterable[int], max_len: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Right-aligned ``(hist, ratings, mask)`` for the given user rows (last ``max_len`` events)."""
    rows = list(rows)
    lens = [len(seqs[r][0]) if max_len is None else min(len(seqs[r][0]), max_len) for r in rows]
    width = max([1, *lens])
    hist = torch.zeros(len(rows), width, dtype=torch.int64)
    rat = torch.zeros(len(rows), width, dtype=torch.float32)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for b, (r, n) in enumerate(zip(rows, lens, strict=True)):
        if n:
            hist[b, width - n :] = torch.as_tensor(seqs[r][0][-n:])
            rat[b, width - n :] = torch.as_tensor(seqs[r][1][-n:])
            mask[b, width - n :] = True
    return hist, rat, mask


def apply_rule(
    seqs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], rule: HistoryRule
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], list[np.ndarray]]:
    """Each sequence with the rule's low ratings taken out, and the item rows that become
    dislikes (as serving's ``EmbedderService._resolve`` does, through ``HistoryRule.split``)."""
    out, dislikes = [], []
    for items, ratings, ts in seqs:
        keep, dis = rule.split(ratings)
        out.append((items[keep], ratings[keep], ts[keep]))
        dislikes.append(items[dis])
    return out, dislikes


@torch.no_grad()
def user_vectors(
    model: PinSageNet,
    item_emb: Tensor,
    seqs: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    form: str,
    chunk: int = 256,
    rule: HistoryRule | None = None,
) -> Tensor:
    """``(n_users, dim)`` user vectors of ``form`` from each user's sequence (oldest -> newest),
    low ratings by ``rule`` (None = every rating is history, as the network was trained)."""
    dislikes: list[np.ndarray] | None = None
    if rule is not None and rule.low_rating != "history":
        seqs, dislikes = apply_rule(seqs, rule)
    max_len = model.cfg.user_window if form in ("pinsage", "latest") else None
    out = []
    for s in range(0, len(seqs), chunk):
        hist, rat, mask = padded_histories(seqs, range(s, min(s + chunk, len(seqs))), max_len)
        dev = item_emb.device
        out.append(model.embed_users(item_emb, hist.to(dev), rat.to(dev), mask.to(dev), form))
    u = torch.cat(out)
    if dislikes is not None:
        u = push_away(u, item_emb, dislikes, model.cfg.dislike_weight)
    return u


def push_away(u: Tensor, item_emb: Tensor, dislikes: list[np.ndarray], weight: float) -> Tensor:
    """``normalise(u - weight · normalise(mean(dislikes)))`` per user with dislikes (as the query
    network does; a user with no history is ``-dislikes``)."""
    u = u.clone()
    for k, d in enumerate(dislikes):
        if len(d):
            dv = item_emb[torch.as_tensor(d, dtype=torch.int64)].mean(0)
            dv = dv / dv.norm().clamp(min=1e-12)
            v = u[k] - weight * dv
            u[k] = v / v.norm().clamp(min=1e-12)
    return u


def pinsage_scorer(
    model: PinSageNet, item_emb: Tensor, p: Prepared, phase: Phase, form: str, rule: HistoryRule | None = None
) -> B.Scorer:
    uv = user_vectors(model, item_emb, p.sequences(phase.upto), form, rule=rule)
    return lambda rows: (uv[rows.to(uv.device)] @ item_emb.T).cpu()


def evaluate_pinsage(
    model: PinSageNet,
    item_emb: Tensor,
    p: Prepared,
    phases: dict[str, Phase],
    forms: Iterable[str] = USER_FORMS,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{form: {phase: metrics}}``."""
    model.eval()
    return {
        form: {
            name: evaluate_scorer(ph, pinsage_scorer(model, item_emb, p, ph, form))
            for name, ph in phases.items()
        }
        for form in forms
    }


def evaluate_rules(
    model: PinSageNet,
    item_emb: Tensor,
    p: Prepared,
    phases: dict[str, Phase],
    form: str,
    rules: Iterable[HistoryRule] = CANDIDATE_RULES,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{rule name: {phase: metrics}}`` for the low-rating rules (one user form)."""
    model.eval()
    return {
        r.name: {
            n: evaluate_scorer(ph, pinsage_scorer(model, item_emb, p, ph, form, r))
            for n, ph in phases.items()
        }
        for r in rules
    }


def choose_rule(
    results: dict[str, dict[str, dict[str, float]]], rules: Iterable[HistoryRule] = CANDIDATE_RULES
) -> HistoryRule:
    """The rule with the best VALIDATION HR@10 (will watch; NDCG@10 breaks ties) among those that
    lose to "history" (every rating as history) on neither target's VALIDATION HR@10."""
    rules = list(rules)
    base = results[HistoryRule().name]["validation"]

    def ok(r: HistoryRule) -> bool:
        v = results[r.name]["validation"]
        return v["hr@10"] >= base["hr@10"] and v.get("like/hr@10", 0.0) >= base.get("like/hr@10", 0.0)

    allowed = [r for r in rules if r.name in results and ok(r)] or [HistoryRule()]
    return max(
        allowed,
        key=lambda r: (results[r.name]["validation"]["hr@10"], results[r.name]["validation"]["ndcg@10"]),
    )


def best_form(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """The user form with the best VALIDATION HR@10 (NDCG@10 breaks ties)."""
    return max(
        results, key=lambda f: (results[f]["validation"]["hr@10"], results[f]["validation"]["ndcg@10"])
    )


# ---- baselines ---------------------------------------------------------------
def run_baselines(
    p: Prepared, phases: dict[str, Phase], seed: int = 0, bpr_epochs: int = 40, log: Log = print
) -> dict[str, dict[str, object]]:
    """``{name: {"validation": metrics, "test": metrics, "params": {...}}}``.

    Tuned on VALIDATION only; the TEST model is refitted on TRAIN+VALIDATION.
    """
    torch.manual_seed(seed)
    val, test = phases["validation"], phases["test"]
    out: dict[str, dict[str, object]] = {}
    t0 = time.perf_counter()
    out["popular"] = {
        "validation": evaluate_scorer(val, B.fit_popular(val.history)),
        "test": evaluate_scorer(test, B.fit_popular(test.history)),
        "params": {},
    }
    out["item-knn"] = {
        "validation": evaluate_scorer(val, B.fit_itemknn(val.history)),
        "test": evaluate_scorer(test, B.fit_itemknn(test.history)),
        "params": {"similarity": "cosine"},
    }
    log(f"popular, item-knn: {time.perf_counter() - t0:.1f}s")
    t0 = time.perf_counter()
    ease_val = {lam: evaluate_scorer(val, B.fit_ease(val.history, lam)) for lam in EASE_LAMBDAS}
    lam = max(EASE_LAMBDAS, key=lambda v: (ease_val[v]["hr@10"], ease_val[v]["ndcg@10"]))
    out["ease"] = {
        "validation": ease_val[lam],
        "test": evaluate_scorer(test, B.fit_ease(test.history, lam)),
        "params": {"lambda": lam, "grid": list(EASE_LAMBDAS)},
    }
    log(f"ease (lambda={lam:g}): {time.perf_counter() - t0:.1f}s")
    t0 = time.perf_counter()
    per_epoch: dict[int, dict[str, float]] = {}

    def on_epoch(epoch: int, scorer: B.Scorer) -> None:
        if epoch % 5 == 0:
            per_epoch[epoch] = evaluate_scorer(val, scorer)

    B.fit_bpr(val.history, bpr_epochs, seed=seed, on_epoch=on_epoch)
    best_ep = max(per_epoch, key=lambda e: (per_epoch[e]["hr@10"], per_epoch[e]["ndcg@10"]))
    out["bpr-mf"] = {
        "validation": per_epoch[best_ep],
        "test": evaluate_scorer(test, B.fit_bpr(test.history, best_ep, seed=seed)),
        "params": {"epochs": best_ep, "dim": 64},
    }
    log(f"bpr-mf (epochs={best_ep}): {time.perf_counter() - t0:.1f}s")
    return out


# ---- table -------------------------------------------------------------------
def table_rows(
    pinsage: dict[str, dict[str, dict[str, float]]] | None, baselines: dict[str, dict[str, object]] | None
) -> list[tuple[str, dict[str, float], dict[str, float]]]:
    rows: list[tuple[str, dict[str, float], dict[str, float]]] = []
    for name, res in (baselines or {}).items():
        rows.append((name, res["validation"], res["test"]))  # type: ignore[arg-type]
    for form, res2 in (pinsage or {}).items():
        rows.append((f"pinsage/{form}", res2.get("validation", {}), res2.get("test", {})))
    return rows


def rule_rows(
    form: str, rules: dict[str, dict[str, dict[str, float]]] | None
) -> list[tuple[str, dict[str, float], dict[str, float]]]:
    """Rows of the low-rating rules (``history`` is the form's own row)."""
    return [
        (f"pinsage/{form}, low ratings: {name}", res.get("validation", {}), res.get("test", {}))
        for name, res in (rules or {}).items()
        if name != HistoryRule().name
    ]


def extra_rows(
    results: dict[str, dict[str, dict[str, float]]],
) -> list[tuple[str, dict[str, float], dict[str, float]]]:
    """Rows of other models (e.g. the two-tower cold-start pair) in the table's shape."""
    return [(name, res.get("validation", {}), res.get("test", {})) for name, res in results.items()]


def _cell(values: dict[str, float], m: str) -> str:
    return f"{values[m]:.4f}" if m in values else "–"


LIKE_COLUMNS: tuple[str, ...] = ("like/hr@10", "like/ndcg@10")


def format_table(rows: list[tuple[str, dict[str, float], dict[str, float]]], n_users: dict[str, int]) -> str:
    """Will-watch metrics on TEST and VALIDATION, then will-like HR@10/NDCG@10 (targets rated >= 4)."""
    head = (
        ["model"]
        + [f"test {m}" for m in METRICS]
        + [f"valid {m}" for m in METRICS]
        + [f"test {m}" for m in LIKE_COLUMNS]
        + [f"valid {m}" for m in LIKE_COLUMNS]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, val, test in rows:
        cells = (
            [name]
            + [_cell(test, m) for m in METRICS]
            + [_cell(val, m) for m in METRICS]
            + [_cell(test, m) for m in LIKE_COLUMNS]
            + [_cell(val, m) for m in LIKE_COLUMNS]
        )
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"\n(users evaluated: validation {n_users.get('validation', 0)}, test {n_users.get('test', 0)})"
    )
    return "\n".join(lines)
