"""The batched query network: padded history (+ dislikes, + form) -> query vector.

The same module runs in-process (torch backend) and is exported to ONNX for
Triton, so both backends compute the same thing. It mirrors
``PinSageNet.embed_users`` / ``embed_user`` (the training engineer's network;
a unit test checks them equal) with export-friendly ops only: every form is
computed and the requested one gathered per row, shapes stay symbolic.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from recsys_embedder.model.pinsage import PinSageNet, position_bucket, rating_bucket


def _normalise(x: Tensor) -> Tensor:
    norm = x.norm(p=2, dim=-1, keepdim=True)
    return x / torch.where(norm == 0, torch.ones_like(norm), norm)


class QueryNet(nn.Module):
    """``forward(history, ratings, mask, dislikes, dislike_mask, form) -> (B, D)``.

    Inputs as in :mod:`recsys_embedder.backends.base`. Rows with neither history
    nor dislikes give a zero vector.
    """

    def __init__(self, net: PinSageNet, item_emb: Tensor) -> None:
        super().__init__()
        cfg = net.cfg
        self.window = int(cfg.user_window)
        self.pos_buckets = int(cfg.pos_buckets)
        self.rating_buckets = int(cfg.rating_buckets)
        self.half_life = float(cfg.recency_half_life)
        self.dislike_weight = float(cfg.dislike_weight)
        self.pos_w = net.pos_w
        self.rat_w = net.rat_w
        self.user_conv = net.user_conv
        self.register_buffer("item_emb", item_emb.detach().clone().to(torch.float32))

    def forward(
        self,
        history: Tensor,
        ratings: Tensor,
        mask: Tensor,
        dislikes: Tensor,
        dislike_mask: Tensor,
        form: Tensor,
    ) -> Tensor:
        item_emb: Tensor = self.item_emb  # type: ignore[assignment]
        m = mask.to(torch.float32)
        e = item_emb[history] * m.unsqueeze(-1)
        n_real = m.sum(1, keepdim=True)
        # latest: the last column (right-aligned)
        latest = e[:, -1]
        # mean
        mean = e.sum(1) / n_real.clamp(min=1.0)
        # recency: rank among real events, 0 = most recent
        rank = (torch.flip(torch.cumsum(torch.flip(m, [1]), 1), [1]) - 1.0).clamp(min=0.0)
        w_rec = torch.pow(0.5, rank / self.half_life) * (ratings / 5.0) * m
        recency = (e * w_rec.unsqueeze(-1)).sum(1)
        # pinsage: the user as a new node over the last `window` events
        e_k = e[:, -self.window :]
        m_k = m[:, -self.window :]
        r_k = ratings[:, -self.window :]
        pos = torch.flip(torch.cumsum(torch.ones_like(m_k), 1), [1]) - 1.0  # column position from the end
        pb = position_bucket(pos, self.pos_buckets)
        rb = rating_bucket(r_k, self.rating_buckets)
        w = nn.functional.softplus(self.pos_w(pb).squeeze(-1) + self.rat_w(rb).squeeze(-1)) * m_k
        msg = self.user_conv.messages(e_k)
        agg = (msg * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp(min=1e-6)
        own = e_k.sum(1) / m_k.sum(1, keepdim=True).clamp(min=1.0)
        pinsage = self.user_conv.combine(agg, own) + own
        stacked = torch.stack([latest, mean, recency, pinsage], dim=1)  # (B, 4, D)
        idx = form.reshape(-1, 1, 1).expand(-1, 1, stacked.shape[2])
        u = _normalise(torch.gather(stacked, 1, idx).squeeze(1))
        u = u * (n_real > 0).to(u.dtype)  # no history -> 0 (as embed_user)
        # dislikes push the vector away from their normalised mean
        dm = dislike_mask.to(torch.float32)
        d = (item_emb[dislikes] * dm.unsqueeze(-1)).sum(1) / dm.sum(1, keepdim=True).clamp(min=1.0)
        has_d = (dm.sum(1, keepdim=True) > 0).to(u.dtype)
        u = u - self.dislike_weight * has_d * _normalise(d)
        return _normalise(u)
