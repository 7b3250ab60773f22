"""Baselines of the offline evaluation: most popular, item-kNN (cosine), EASE, BPR-MF.

Each ``fit_*`` takes the binary user x item matrix of the events a phase may
use (TRAIN for VALIDATION; TRAIN+VALIDATION for TEST) and returns a scorer
``user_rows -> (B, n_items)`` scores. Hyperparameters are tuned on VALIDATION
only (EASE's lambda, BPR's epoch count) and the TEST model is refitted on
TRAIN+VALIDATION with them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

Scorer = Callable[[Tensor], Tensor]


def binary_matrix(user_rows: np.ndarray, item_rows: np.ndarray, n_users: int, n_items: int) -> Tensor:
    """Dense float32 ``(n_users, n_items)`` with 1 where the user interacted."""
    x = torch.zeros(n_users, n_items, dtype=torch.float32)
    x[torch.as_tensor(user_rows), torch.as_tensor(item_rows)] = 1.0
    return x


def fit_popular(x: Tensor) -> Scorer:
    pop = x.sum(0)
    return lambda users: pop.unsqueeze(0).expand(len(users), -1)


def fit_itemknn(x: Tensor) -> Scorer:
    """Item-item cosine similarity on the binary matrix (self-similarity removed)."""
    norms = x.sum(0).sqrt().clamp(min=1e-12)
    sim = (x.T @ x) / norms.unsqueeze(0) / norms.unsqueeze(1)
    sim.fill_diagonal_(0.0)
    return lambda users: x[users] @ sim


def ease_weights(x: Tensor, lam: float) -> Tensor:
    """EASE (Steck 2019): ``B = I - P / diag(P)``, ``P = (XᵀX + λI)⁻¹``, diag(B) = 0.

    Uses the Woodbury identity when there are fewer users than items
    (``P = (I - Xᵀ (λI + XXᵀ)⁻¹ X) / λ``): exact, and much cheaper then.
    """
    xd = x.to(torch.float64)
    n_users, n_items = xd.shape
    if n_users < n_items:
        k = xd @ xd.T
        k.diagonal().add_(lam)
        m = torch.linalg.solve(k, xd)  # (λI + XXᵀ)⁻¹ X
        p = -(xd.T @ m)
        p.diagonal().add_(1.0)
        p /= lam
    else:
        g = xd.T @ xd
        g.diagonal().add_(lam)
        p = torch.cholesky_inverse(torch.linalg.cholesky(g))
    b = -p / p.diagonal().unsqueeze(0)
    b.fill_diagonal_(0.0)
    return b.to(torch.float32)


def fit_ease(x: Tensor, lam: float) -> Scorer:
    b = ease_weights(x, lam)
    return lambda users: x[users] @ b


def fit_bpr(
    x: Tensor,
    epochs: int,
    dim: int = 64,
    lr: float = 5e-3,
    reg: float = 1e-5,
    batch: int = 2048,
    seed: int = 0,
    on_epoch: Callable[[int, Scorer], None] | None = None,
) -> Scorer:
    """BPR matrix factorisation (Rendle 2009) with item biases, Adam, uniform negatives.

    ``on_epoch(epoch, scorer)`` is called after every epoch (used to pick the
    epoch count on VALIDATION).
    """
    gen = torch.Generator().manual_seed(seed)
    n_users, n_items = x.shape
    users, items = x.nonzero(as_tuple=True)
    ue = torch.nn.Parameter(torch.randn(n_users, dim, generator=gen) * 0.01)
    ie = torch.nn.Parameter(torch.randn(n_items, dim, generator=gen) * 0.01)
    ib = torch.nn.Parameter(torch.zeros(n_items))
    opt = torch.optim.Adam([ue, ie, ib], lr=lr)

    def scorer(rows: Tensor) -> Tensor:
        with torch.no_grad():
            return ue[rows] @ ie.T + ib.unsqueeze(0)

    for epoch in range(1, epochs + 1):
        perm = torch.randperm(len(users), generator=gen)
        for s in range(0, len(perm), batch):
            idx = perm[s : s + batch]
            u, i = users[idx], items[idx]
            j = torch.randint(0, n_items, (len(idx),), generator=gen)
            ok = x[u, j] == 0  # drop sampled "negatives" the user has
            u, i, j = u[ok], i[ok], j[ok]
            pu = ue[u]
            diff = (pu * (ie[i] - ie[j])).sum(1) + ib[i] - ib[j]
            loss = -torch.nn.functional.logsigmoid(diff).mean()
            loss = loss + reg * (pu.pow(2).sum() + ie[i].pow(2).sum() + ie[j].pow(2).sum()) / len(u)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if on_epoch is not None:
            on_epoch(epoch, scorer)
    return scorer
