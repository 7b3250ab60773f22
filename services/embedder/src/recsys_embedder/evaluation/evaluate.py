"""The offline evaluation: PinSage user forms and the baselines, in one table.

Protocol: see :mod:`recsys_embedder.training.data`. For VALIDATION a model sees
each user's TRAIN events and ranks every movie except them; for TEST it sees
TRAIN+VALIDATION and ranks every movie except those. Metrics are averaged over
the users that have the event (all users with at least 3 ratings).
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


def make_phase(p: Prepared, name: str) -> Phase:
    which = PHASES[name]
    upto = which - 1
    sel = p.split <= upto
    hist = B.binary_matrix(p.u[sel], p.i[sel], p.n_users, p.n_items)
    tgt = p.targets(which)
    users = np.flatnonzero(tgt >= 0)
    return Phase(name, torch.as_tensor(users), torch.as_tensor(tgt[users]), hist, upto)


def rank_phase(phase: Phase, scorer: B.Scorer, chunk: int = 512) -> Tensor:
    out = []
    for s in range(0, len(phase.users), chunk):
        rows = phase.users[s : s + chunk]
        scores = scorer(rows).to(torch.float32)
        out.append(target_ranks(scores, phase.targets[s : s + chunk], phase.history[rows] > 0))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def evaluate_scorer(phase: Phase, scorer: B.Scorer) -> dict[str, float]:
    return metrics_from_ranks(rank_phase(phase, scorer))


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


@torch.no_grad()
def user_vectors(
    model: PinSageNet,
    item_emb: Tensor,
    seqs: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    form: str,
    chunk: int = 256,
) -> Tensor:
    """``(n_users, dim)`` user vectors of ``form`` from each user's sequence."""
    max_len = model.cfg.user_window if form in ("pinsage", "latest") else None
    out = []
    for s in range(0, len(seqs), chunk):
        hist, rat, mask = padded_histories(seqs, range(s, min(s + chunk, len(seqs))), max_len)
        dev = item_emb.device
        out.append(model.embed_users(item_emb, hist.to(dev), rat.to(dev), mask.to(dev), form))
    return torch.cat(out)


def pinsage_scorer(model: PinSageNet, item_emb: Tensor, p: Prepared, phase: Phase, form: str) -> B.Scorer:
    uv = user_vectors(model, item_emb, p.sequences(phase.upto), form)
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
        rows.append((f"pinsage/{form}", res2["validation"], res2["test"]))
    return rows


def extra_rows(
    results: dict[str, dict[str, dict[str, float]]],
) -> list[tuple[str, dict[str, float], dict[str, float]]]:
    """Rows of other models (e.g. the two-tower cold-start pair) in the table's shape."""
    return [(name, res.get("validation", {}), res.get("test", {})) for name, res in results.items()]


def _cell(values: dict[str, float], m: str) -> str:
    return f"{values[m]:.4f}" if m in values else "–"


def format_table(rows: list[tuple[str, dict[str, float], dict[str, float]]], n_users: dict[str, int]) -> str:
    head = ["model"] + [f"test {m}" for m in METRICS] + [f"valid {m}" for m in METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, val, test in rows:
        cells = [name] + [_cell(test, m) for m in METRICS] + [_cell(val, m) for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"\n(users evaluated: validation {n_users.get('validation', 0)}, test {n_users.get('test', 0)})"
    )
    return "\n".join(lines)
