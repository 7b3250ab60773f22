"""The PinSage network in plain torch over fixed-size neighbour tables.

No DGL here: serving imports this module. A neighbour table is a pair of
``(n, T)`` tensors, ``nbr_ids`` (rows into the source representations, any
valid row where padded) and ``nbr_w`` (importance weights, 0 where padded).
One layer (:class:`PinSageConv`) is the paper's CONVOLVE step as in DGL's
``WeightedSAGEConv``::

    n_j   = relu(Q · dropout(h_j))                for every neighbour j
    agg_v = Σ_j w_vj n_j / max(Σ_j w_vj, 1)       importance-weighted mean
    z_v   = relu(W · dropout([agg_v ; h_v]))      concat with the node itself
    h'_v  = z_v / ||z_v||                         normalisation

Two layers over the item graph, then ``e_v = normalise(h2_v + h0_v)`` (the
skip connection of DGL's example). ``h0`` comes from the item features
(genres, year, hashed title words, popularity) plus an optional learned id
embedding (known movies only; a new movie is embedded from its features and
its neighbours).

Users are not graph nodes at training time; a user vector is formed from the
history (see :data:`USER_FORMS`). The learned form ``pinsage`` treats the user
as a new node whose neighbours are the most recent ``user_window`` history
movies, with importance weights learned from recency rank and rating, and runs
one more CONVOLVE step over them (its "own" representation is the plain mean
of the history).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

USER_FORMS: tuple[str, ...] = ("latest", "mean", "recency", "pinsage")
"""How a history becomes one query vector: the most recent movie; the mean of
the history; an exponentially recency- and rating-weighted mean; the learned
PinSage aggregation of the history as a new node."""


@dataclass(frozen=True)
class ModelConfig:
    """Shapes and options of :class:`PinSageNet` (stored in the manifest)."""

    n_items: int
    dense_dim: int
    title_buckets: int
    dim: int = 64
    hidden: int = 64
    n_layers: int = 2
    use_id_embedding: bool = True
    dropout: float = 0.0
    user_window: int = 50
    pos_buckets: int = 10
    rating_buckets: int = 11
    recency_half_life: float = 5.0
    dislike_weight: float = 0.5

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, object]) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})  # type: ignore[arg-type]


def _normalise(x: Tensor) -> Tensor:
    norm = x.norm(p=2, dim=-1, keepdim=True)
    return x / torch.where(norm == 0, torch.ones_like(norm), norm)


def position_bucket(pos_from_end: Tensor, n_buckets: int) -> Tensor:
    """Recency rank (0 = most recent) -> bucket: 0,1,2,3 exact, then log2 rings."""
    p = pos_from_end.clamp(min=0).to(torch.float32)
    ring = 4 + torch.floor(torch.log2(torch.clamp(p, min=4.0) / 4.0)).to(torch.int64)
    b = torch.where(p < 4, p.to(torch.int64), ring)
    return b.clamp(max=n_buckets - 1)


def rating_bucket(ratings: Tensor, n_buckets: int) -> Tensor:
    """Rating (0.5..5 stars) -> round(2·rating), clipped to the table."""
    return torch.round(ratings.to(torch.float32) * 2).to(torch.int64).clamp(0, n_buckets - 1)


class PinSageConv(nn.Module):
    """One importance-weighted aggregation layer (see the module docstring)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.Q = nn.Linear(in_dim, hidden)
        self.W = nn.Linear(in_dim + hidden, out_dim)
        self.dropout = nn.Dropout(dropout)

    def messages(self, h_src: Tensor) -> Tensor:
        return F.relu(self.Q(self.dropout(h_src)))

    def combine(self, agg: Tensor, h_dst: Tensor) -> Tensor:
        z = F.relu(self.W(self.dropout(torch.cat([agg, h_dst], dim=-1))))
        return _normalise(z)

    def forward(self, h_src: Tensor, h_dst: Tensor, nbr_ids: Tensor, nbr_w: Tensor) -> Tensor:
        n = self.messages(h_src)[nbr_ids]  # (B, T, hidden)
        w = nbr_w.to(n.dtype)
        w = w / w.sum(dim=1, keepdim=True).clamp(min=1.0)
        agg = torch.bmm(w.unsqueeze(1), n).squeeze(1)
        return self.combine(agg, h_dst)


class PinSageNet(nn.Module):
    """Item encoder (features [+ id] -> 2 PinSage layers) and user aggregation."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.dense_proj = nn.Linear(cfg.dense_dim, d)
        self.title = nn.EmbeddingBag(cfg.title_buckets, d, mode="mean", padding_idx=0)
        nn.init.normal_(self.title.weight, std=0.1)
        self.id_emb: nn.Embedding | None = None
        if cfg.use_id_embedding:
            self.id_emb = nn.Embedding(cfg.n_items, d)
            nn.init.normal_(self.id_emb.weight, std=0.1)
        self.convs = nn.ModuleList(PinSageConv(d, cfg.hidden, d, cfg.dropout) for _ in range(cfg.n_layers))
        # user-as-a-node aggregation
        self.pos_w = nn.Embedding(cfg.pos_buckets, 1)
        self.rat_w = nn.Embedding(cfg.rating_buckets, 1)
        nn.init.zeros_(self.rat_w.weight)
        with torch.no_grad():
            for b in range(cfg.pos_buckets):  # start as a recency decay
                self.pos_w.weight[b, 0] = 1.0 - 0.5 * b
        self.user_conv = PinSageConv(d, cfg.hidden, d, cfg.dropout)

    # ---- items -------------------------------------------------------------
    def input_repr(self, dense: Tensor, tokens: Tensor, rows: Tensor | None = None) -> Tensor:
        """h0 from features; ``rows`` (item rows, -1 = unknown) adds the id embedding."""
        h = self.dense_proj(dense) + self.title(tokens)
        if self.id_emb is not None and rows is not None:
            known = rows >= 0
            ids = self.id_emb(rows.clamp(min=0)) * known.unsqueeze(-1).to(h.dtype)
            h = h + ids
        return h

    def item_states(self, dense: Tensor, tokens: Tensor, nbr_ids: Tensor, nbr_w: Tensor) -> list[Tensor]:
        """``[h0, h1, ..., hL]`` for every known item (full-graph propagation)."""
        rows = torch.arange(dense.shape[0], device=dense.device)
        h = self.input_repr(dense, tokens, rows)
        states = [h]
        for conv in self.convs:
            h = conv(h, h, nbr_ids, nbr_w)
            states.append(h)
        return states

    @staticmethod
    def final(states: list[Tensor]) -> Tensor:
        return _normalise(states[-1] + states[0])

    def embed_items(self, dense: Tensor, tokens: Tensor, nbr_ids: Tensor, nbr_w: Tensor) -> Tensor:
        """L2-normalised embeddings ``(n_items, dim)`` of all known items."""
        return self.final(self.item_states(dense, tokens, nbr_ids, nbr_w))

    def embed_rows(
        self, dense: Tensor, tokens: Tensor, nbr_ids: Tensor, nbr_w: Tensor, rows: Tensor
    ) -> Tensor:
        """:meth:`embed_items` of ``rows`` only (sorted, unique item rows): the same function,
        computed on the rows' L-hop neighbourhood instead of the whole catalog (PinSage's
        mini-batch computation graph; what the sampled-softmax training step encodes)."""
        need = [rows]
        for _ in self.convs:  # rows a layer needs: its outputs and their neighbours
            top = need[0]
            need.insert(0, torch.unique(torch.cat([top, nbr_ids[top].reshape(-1)])))
        src = need[0]
        h = self.input_repr(dense[src], tokens[src], src)
        h0 = h[torch.searchsorted(src, rows)]
        for layer, conv in enumerate(self.convs):
            have, dst = need[layer], need[layer + 1]
            h = conv(h, h[torch.searchsorted(have, dst)], torch.searchsorted(have, nbr_ids[dst]), nbr_w[dst])
        return _normalise(h + h0)

    def embed_new_items(
        self, dense: Tensor, tokens: Tensor, nbr_ids: Tensor, nbr_w: Tensor, states: list[Tensor]
    ) -> Tensor:
        """Embed movies unseen in training from features and known neighbours.

        ``nbr_ids``/``nbr_w`` ``(B, T)`` point at rows of the known items;
        ``states`` is :meth:`item_states` of the known items (computed once).
        """
        h = self.input_repr(dense, tokens, None)
        h0 = h
        for layer, conv in enumerate(self.convs):
            h = conv(states[layer], h, nbr_ids, nbr_w)
        return _normalise(h + h0)

    # ---- users -------------------------------------------------------------
    def embed_users(
        self, item_emb: Tensor, hist: Tensor, ratings: Tensor, mask: Tensor, form: str = "pinsage"
    ) -> Tensor:
        """Batched user vectors ``(B, dim)``, L2-normalised.

        ``hist`` ``(B, L)`` item rows ordered oldest -> newest and right-aligned
        (the most recent event in the last column), ``ratings`` the matching
        ratings, ``mask`` True on real events. Users with no event get 0.
        """
        m = mask.to(item_emb.dtype)
        L = hist.shape[1]
        e = item_emb[hist.clamp(min=0)] * m.unsqueeze(-1)
        pos = torch.arange(L - 1, -1, -1, device=hist.device).expand_as(hist)
        if form == "latest":
            u = e[:, -1]
        elif form == "mean":
            u = e.sum(1) / m.sum(1, keepdim=True).clamp(min=1.0)
        elif form == "recency":
            # rank among the real events, 0 = most recent
            rank = (torch.flip(torch.cumsum(torch.flip(m, [1]), 1), [1]) - 1).clamp(min=0)
            w = torch.pow(0.5, rank / self.cfg.recency_half_life) * (ratings.to(m.dtype) / 5.0) * m
            u = (e * w.unsqueeze(-1)).sum(1)
        elif form == "pinsage":
            K = min(self.cfg.user_window, L)
            e, m_k = e[:, -K:], m[:, -K:]
            pb = position_bucket(pos[:, -K:], self.cfg.pos_buckets)
            rb = rating_bucket(ratings[:, -K:], self.cfg.rating_buckets)
            w = F.softplus(self.pos_w(pb).squeeze(-1) + self.rat_w(rb).squeeze(-1)) * m_k
            conv = self.user_conv
            n = conv.messages(e)
            agg = (n * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp(min=1e-6)
            own = e.sum(1) / m_k.sum(1, keepdim=True).clamp(min=1.0)
            u = conv.combine(agg, own) + own
        else:
            raise ValueError(f"unknown user form {form!r}; expected one of {USER_FORMS}")
        return _normalise(u)

    def embed_user(
        self,
        item_emb: Tensor,
        history_rows: Tensor,
        ratings: Tensor,
        timestamps: Tensor,
        dislikes: Tensor | None = None,
        form: str = "pinsage",
    ) -> Tensor:
        """One user's vector ``(dim,)`` from an unordered history.

        The history is sorted by (timestamp, row); ``dislikes`` (item rows)
        push the vector away: ``u - dislike_weight · normalise(mean(dislikes))``,
        renormalised. An empty history with dislikes gives the opposite
        direction of the dislikes; with neither, a zero vector.
        """
        dev = item_emb.device
        history_rows = history_rows.to(dev).long()
        if history_rows.numel() > 0:
            key = timestamps.to(dev).long() * (item_emb.shape[0] + 1) + history_rows
            order = torch.argsort(key)
            hist = history_rows[order].unsqueeze(0)
            rat = ratings.to(dev)[order].unsqueeze(0)
            u = self.embed_users(item_emb, hist, rat, torch.ones_like(hist, dtype=torch.bool), form)[0]
        else:
            u = torch.zeros(item_emb.shape[1], device=dev, dtype=item_emb.dtype)
        if dislikes is not None and dislikes.numel() > 0:
            d = _normalise(item_emb[dislikes.to(dev).long()].mean(0))
            u = u - self.cfg.dislike_weight * d
        return _normalise(u)
