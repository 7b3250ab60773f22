"""Cold-start evaluation of the two-tower model: users treated as new.

For every user with a TEST event and known demographics, the user vector comes
from demographics alone (no id, no history). All movies are ranked except the
user's TRAIN and VALIDATION movies, and the TEST movie's rank gives HR@10 and
NDCG@10. "Most popular" (TRAIN+VALIDATION counts) and "recent popular" (the same counts
weighted by ``0.5 ** (age / 30 days)``, age from the newest rating: what the model's
popularity prior uses) are scored on the same users with the same exclusions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from recsys_core.demographics import age_bracket, gender_index

from recsys_embedder.evaluation.metrics import metrics_from_ranks, target_ranks
from recsys_embedder.model.two_tower import TwoTower
from recsys_embedder.training.two_tower import event_weights, positions_from_end

RECENT_POPULAR_HALF_LIFE_DAYS = 30.0


def evaluate_two_tower_cold(
    dataset: Any,
    masks: tuple[np.ndarray, np.ndarray, np.ndarray],
    model: TwoTower,
    *,
    target: str = "test",
    batch_size: int = 512,
) -> dict[str, float]:
    """``masks`` = (train, valid, test) over ``dataset.interactions``.

    ``target="valid"`` ranks the VALIDATION movie excluding TRAIN movies only (for
    choosing hyperparameters without looking at TEST).

    Returns ``{"two_tower/hr@10", "two_tower/ndcg@10", "popular/hr@10", "popular/ndcg@10",
    "recent_popular/hr@10", "recent_popular/ndcg@10", "users"}``; ``users`` = 0 (and no other
    key) when the data set has no demographics.
    """
    train, valid, test = (np.asarray(m, dtype=bool) for m in masks)
    if target == "valid":
        seen, test = train, valid
    elif target == "test":
        seen = train | valid
    else:
        raise ValueError(f"target must be 'test' or 'valid', got {target!r}")
    inter = dataset.interactions
    cfg = model.config
    demo = {
        u.user_id: (gender_index(u.gender), age_bracket(u.age), cfg.occupation_index(u.occupation))
        for u in dataset.users
        if u.gender or u.age or u.occupation
    }
    test_users = inter.user_ids[test]
    keep = np.array([int(u) in demo for u in test_users], dtype=bool)
    if not keep.any():
        return {"users": 0.0}
    users = test_users[keep]
    targets_mid = inter.movie_ids[test][keep]
    movie_ids = model.movie_ids
    targets = np.searchsorted(movie_ids, targets_mid)
    n_items = len(movie_ids)

    seen_u = inter.user_ids[seen]
    seen_i = np.searchsorted(movie_ids, inter.movie_ids[seen])
    pop = torch.from_numpy(np.bincount(seen_i, minlength=n_items).astype(np.float32))
    recent_w = event_weights(inter.timestamps[seen], half_life_days=RECENT_POPULAR_HALF_LIFE_DAYS)
    recent = torch.from_numpy(np.bincount(seen_i, weights=recent_w, minlength=n_items))
    user_pos = {int(u): k for k, u in enumerate(users)}
    ex_rows = np.array([user_pos.get(int(u), -1) for u in seen_u])
    ok = ex_rows >= 0

    g = np.array([demo[int(u)][0] for u in users])
    a = np.array([demo[int(u)][1] for u in users])
    o = np.array([demo[int(u)][2] for u in users])
    user_vec = torch.from_numpy(model.user_embeddings(g, a, o))
    item_vec = torch.from_numpy(model.item_embeddings())

    tt_ranks, pop_ranks, recent_ranks = [], [], []
    for s in range(0, len(users), batch_size):
        e = min(s + batch_size, len(users))
        exclude = torch.zeros(e - s, n_items, dtype=torch.bool)
        sel = ok & (ex_rows >= s) & (ex_rows < e)
        exclude[torch.from_numpy(ex_rows[sel] - s), torch.from_numpy(seen_i[sel])] = True
        t = torch.from_numpy(targets[s:e])
        exclude[torch.arange(e - s), t] = False
        tt_ranks.append(target_ranks(user_vec[s:e] @ item_vec.T, t, exclude))
        pop_ranks.append(target_ranks(pop.unsqueeze(0).expand(e - s, -1), t, exclude))
        recent_ranks.append(target_ranks(recent.unsqueeze(0).expand(e - s, -1), t, exclude))
    out: dict[str, float] = {}
    for key, ranks in (("two_tower", tt_ranks), ("popular", pop_ranks), ("recent_popular", recent_ranks)):
        m = metrics_from_ranks(torch.cat(ranks))
        out.update({f"{key}/{k}": v for k, v in m.items() if k in ("hr@10", "ndcg@10")})
    out["users"] = float(len(users))
    return out


def extended_validation_masks(inter: Any, folds: int = 4) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Masks for choosing settings on more than one event per user, all before TEST.

    Fold ``j`` (0..folds-1) targets each user's ``(j + 2)``-th last event (by timestamp, then
    movie id, as ``leave_last_out``) and trains on the events before it (every user's events
    from that position on are in no mask); a user needs ``j + 3`` events to have a target.
    Fold 0 is ``leave_last_out``'s (TRAIN, VALIDATION). Each element is ``(train, valid,
    empty)`` for ``evaluate_two_tower_cold(..., target="valid")`` (the ml-100k settings were
    chosen on the mean over 4 folds).
    """
    n = len(inter)
    from_end = positions_from_end(inter.user_ids, inter.movie_ids, inter.timestamps)  # 0 = TEST
    _, user_row, user_counts = np.unique(inter.user_ids, return_inverse=True, return_counts=True)
    count_of = user_counts[user_row]  # the user's number of events
    out = []
    for j in range(folds):
        k = j + 1
        out.append((from_end > k, (from_end == k) & (count_of >= k + 2), np.zeros(n, dtype=bool)))
    return out
