"""Ranking metrics under the leave-last-out protocol (vectorised, torch).

Ranks are 0-based: the number of candidate movies ranked above the target.
Ties are broken by item row (a lower row ranks first), as a stable sort would.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

METRICS: tuple[str, ...] = ("hr@10", "ndcg@10", "hr@20", "mrr@10")


def target_ranks(scores: Tensor, targets: Tensor, exclude: Tensor) -> Tensor:
    """Rank of ``targets[b]`` in ``scores[b]`` after removing ``exclude[b]`` (bool, same shape).

    ``scores`` ``(B, N)``; the target is never excluded (it is not in the
    user's history under the protocol, and it is kept if it were).
    """
    b = torch.arange(scores.shape[0], device=scores.device)
    s = scores.masked_fill(exclude, float("-inf"))
    t = scores[b, targets].unsqueeze(1)
    cols = torch.arange(scores.shape[1], device=scores.device).unsqueeze(0)
    above = (s > t) | ((s == t) & (cols < targets.unsqueeze(1)))
    return above.sum(dim=1)


def metrics_from_ranks(ranks: Tensor) -> dict[str, float]:
    """HR@10, NDCG@10, HR@20 and MRR@10 averaged over users (one target each)."""
    r = ranks.to(torch.float64)
    n = max(int(r.numel()), 1)
    in10 = r < 10
    return {
        "hr@10": float(in10.sum()) / n,
        "ndcg@10": float(torch.where(in10, 1.0 / torch.log2(r + 2.0), torch.zeros_like(r)).sum()) / n,
        "hr@20": float((r < 20).sum()) / n,
        "mrr@10": float(torch.where(in10, 1.0 / (r + 1.0), torch.zeros_like(r)).sum()) / n,
    }


def ndcg_at(rank: int, k: int = 10) -> float:
    """NDCG@k of one target at 0-based ``rank`` (one relevant item: IDCG = 1)."""
    return 1.0 / math.log2(rank + 2) if rank < k else 0.0
