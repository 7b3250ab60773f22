"""Sampled softmax with the sampling-bias (logQ) correction for the next-item loss.

The full softmax scores every movie for every event, so a step costs O(batch x catalog).
Here one set of ``N`` negatives is drawn per step (with replacement) from ``q``, a
distribution over the catalog (popularity^alpha, alpha = 0 uniform), shared by the batch.
Each row's loss is ``-log softmax`` over its own target and the negatives, with the
negatives' logits corrected so that their exponentials are an importance-sampling estimate
of the excluded-item partition sum::

    Z = exp(s_t) + sum_{j not t, not in the user's history} exp(s_j)
      ~ exp(s_t) + sum_{k=1..N} [j_k not t, not in history] exp(s_{j_k}) / (N q_{j_k})

i.e. a drawn movie ``j`` (drawn ``c_j`` times) enters with the logit
``s_j - log(N q_j) + log c_j``: the log-probability of drawing it is *subtracted* (the logQ
correction; popular movies are drawn often, so each draw must count for less). The estimate
is unbiased for ``Z`` (the loss is its log, so biased a little upward by Jensen); accidental
hits (the target or an earlier movie of the same user among the negatives) are masked, as the
full softmax masks every earlier movie. With every movie drawn exactly once and ``q``
uniform the correction is 0 and the loss is the full softmax's exactly (a test checks both).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES: tuple[str, ...] = ("full", "sampled")


def negative_distribution(counts: np.ndarray, alpha: float) -> np.ndarray:
    """``q_j ∝ (count_j + 1)^alpha`` over the catalog (the +1 keeps every movie drawable, so the
    estimate stays unbiased for movies with no TRAIN event; ``alpha = 0`` is uniform)."""
    if alpha < 0:
        raise ValueError(f"negative sampling alpha must be >= 0, got {alpha}")
    w = (np.asarray(counts, dtype=np.float64) + 1.0) ** alpha
    return w / w.sum()


@dataclass(frozen=True)
class Negatives:
    """One step's drawn negatives: unique item rows (sorted) and the logit correction of each,
    ``log c_j - log(N q_j)``."""

    rows: Tensor
    log_weight: Tensor


class NegativeSampler:
    """Draws ``n`` negatives with replacement from ``q`` (inverse CDF, O(n log catalog))."""

    def __init__(self, q: np.ndarray, n: int) -> None:
        if n < 1:
            raise ValueError(f"the number of negatives must be >= 1, got {n}")
        self.q = np.asarray(q, dtype=np.float64)
        self.cdf = np.cumsum(self.q)
        self.cdf /= self.cdf[-1]
        self.n = n

    def draw(self, rng: np.random.Generator) -> Negatives:
        idx = np.searchsorted(self.cdf, rng.random(self.n), side="right")
        idx = np.minimum(idx, len(self.q) - 1)
        rows, counts = np.unique(idx, return_counts=True)
        logw = np.log(counts) - np.log(self.n * self.q[rows])
        return Negatives(torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(logw, dtype=torch.float32))


def sampled_softmax_loss(
    user: Tensor,
    target_emb: Tensor,
    target: Tensor,
    neg_emb: Tensor,
    neg: Negatives,
    ex_rows: Tensor,
    ex_items: Tensor,
    scale: float,
) -> Tensor:
    """Mean ``-log softmax`` of each row's target against the corrected negatives.

    ``user`` (B, d), ``target_emb`` (B, d) the targets' embeddings, ``target`` (B,) their item
    rows, ``neg_emb`` (M, d) the embeddings of ``neg.rows``; ``(ex_rows, ex_items)`` the
    (batch row, item row) pairs excluded from a row's softmax (its earlier movies).
    """
    s_pos = scale * (user * target_emb).sum(1, keepdim=True)
    s_neg = scale * (user @ neg_emb.T) + neg.log_weight.to(user.device)[None, :]
    rows = neg.rows.to(user.device)
    hit = rows[None, :] == target[:, None]
    if ex_items.numel():
        col = torch.searchsorted(rows, ex_items).clamp(max=len(rows) - 1)
        found = rows[col] == ex_items
        hit[ex_rows[found], col[found]] = True
    s_neg = s_neg.masked_fill(hit, float("-inf"))
    logits = torch.cat([s_pos, s_neg], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.int64, device=logits.device))


def full_softmax_loss(
    user: Tensor, item_emb: Tensor, target: Tensor, ex_rows: Tensor, ex_items: Tensor, scale: float
) -> Tensor:
    """The full-catalog next-item softmax (earlier movies of the user excluded)."""
    logits = scale * (user @ item_emb.T)
    logits = logits.index_put((ex_rows, ex_items), torch.tensor(float("-inf"), device=logits.device))
    return F.cross_entropy(logits, target)
