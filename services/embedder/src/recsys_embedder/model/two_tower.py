"""The demographic two-tower model (PaddlePaddle's MovieLens recommender demo, in torch).

User tower: gender, age bracket, occupation (+ the user id when known) -> MLP.
Movie tower: movie id, genres (+ year and TRAIN popularity with ``dense_features``), hashed
title words -> MLP.
Score: the cosine of the two (L2-normalised) vectors scaled to the rating range,
``rating_min + (rating_max - rating_min) * (cos + 1) / 2``, trained with squared error.

Served vectors (:meth:`TwoTower.item_embeddings`, :meth:`TwoTower.user_embeddings`) may carry
a popularity prior folded in (see :func:`augment_items`): two extra coordinates so that the
inner product of the (still L2-normalised) vectors ranks movies by
``taste + prior_weight * prior``, ``taste`` = the towers' cosine and ``prior`` in ``[0, 1]``
the movie's recency-weighted TRAIN popularity.

Categorical inputs use index 0 for "unknown / not given", so a new user (no id,
maybe no occupation) still has a vector. Plain torch: serving imports this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from recsys_core.demographics import GENDERS, ML1M_AGES
from torch import Tensor, nn


@dataclass(frozen=True)
class TwoTowerConfig:
    """Shapes and vocabularies of :class:`TwoTowerNet` (stored in the manifest)."""

    n_users: int
    n_items: int
    occupations: tuple[str, ...]
    genres: tuple[str, ...]
    feature_dim: int = 0  # width of the item feature block; 0 = len(genres) (genres multi-hot only)
    title_buckets: int = 4096
    title_len: int = 8
    dim: int = 32
    embed: int = 16
    hidden: int = 64
    rating_min: float = 0.0
    rating_max: float = 5.0

    def to_json(self) -> dict[str, object]:
        d = asdict(self)
        d["occupations"] = list(self.occupations)
        d["genres"] = list(self.genres)
        return d

    @classmethod
    def from_json(cls, d: dict[str, object]) -> TwoTowerConfig:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["occupations"] = tuple(str(o) for o in d["occupations"])  # type: ignore[attr-defined]
        kw["genres"] = tuple(str(g) for g in d["genres"])  # type: ignore[attr-defined]
        return cls(**kw)  # type: ignore[arg-type]

    def occupation_index(self, occupation: str | None) -> int:
        """Occupation name (case-insensitive) -> 1..len; 0 when not given or not in the vocabulary."""
        if not occupation:
            return 0
        occ = occupation.strip().lower()
        for k, name in enumerate(self.occupations):
            if name == occ:
                return k + 1
        return 0


def augment_items(taste: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Movie vectors with the prior folded in: ``[m, p, sqrt(1 - p^2)] / sqrt(2)``.

    ``taste`` ``(n, d)`` L2-normalised, ``prior`` ``(n,)`` in ``[0, 1]``. Every row has norm 1
    by construction, so an L2-normalising vector store keeps them as they are.
    """
    p = np.clip(np.asarray(prior, np.float64), 0.0, 1.0)[:, None]
    out = np.concatenate([np.asarray(taste, np.float64), p, np.sqrt(1.0 - p * p)], axis=1) / np.sqrt(2.0)
    return out.astype(np.float32)


def augment_users(taste: np.ndarray, weight: float) -> np.ndarray:
    """User vectors matching :func:`augment_items`: ``[u, w, 0] / sqrt(1 + w^2)`` (norm 1), so
    ``user . movie = (cos(u, m) + w * p) / sqrt(2 (1 + w^2))``: the same order as
    ``cos + w * p`` for every user."""
    u = np.asarray(taste, np.float64)
    extra = np.zeros((len(u), 2), np.float64)
    extra[:, 0] = weight
    out = np.concatenate([u, extra], axis=1) / np.sqrt(1.0 + weight * weight)
    return out.astype(np.float32)


def _normalise(x: Tensor) -> Tensor:
    return F.normalize(x, p=2.0, dim=-1, eps=1e-12)


class TwoTowerNet(nn.Module):
    def __init__(self, cfg: TwoTowerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        e = cfg.embed
        self.gender = nn.Embedding(len(GENDERS) + 1, e)
        self.age = nn.Embedding(len(ML1M_AGES) + 1, e)
        self.occupation = nn.Embedding(len(cfg.occupations) + 1, e)
        self.user_id = nn.Embedding(cfg.n_users + 1, e)  # row + 1; 0 = unknown / new user
        self.user_mlp = nn.Sequential(nn.Linear(4 * e, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.dim))
        self.movie_id = nn.Embedding(cfg.n_items + 1, 2 * e)  # row + 1; 0 = unknown movie
        self.features = nn.Linear(cfg.feature_dim or len(cfg.genres), 2 * e, bias=False)
        self.title = nn.EmbeddingBag(cfg.title_buckets, 2 * e, mode="mean", padding_idx=0)
        self.movie_mlp = nn.Sequential(
            nn.Linear(6 * e, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.dim)
        )
        for emb in (self.gender, self.age, self.occupation, self.user_id, self.movie_id):
            nn.init.normal_(emb.weight, std=0.1)
        nn.init.normal_(self.title.weight, std=0.1)

    def user_vectors(self, gender: Tensor, age: Tensor, occupation: Tensor, user: Tensor) -> Tensor:
        """L2-normalised ``(B, dim)`` from index tensors (0 = unknown; ``user`` = row + 1)."""
        x = torch.cat(
            [self.gender(gender), self.age(age), self.occupation(occupation), self.user_id(user)], dim=-1
        )
        return _normalise(self.user_mlp(x))

    def item_vectors(self, movie: Tensor, features: Tensor, tokens: Tensor) -> Tensor:
        """L2-normalised ``(B, dim)``: ``movie`` = row + 1 (0 = unknown), the item feature block
        (genres multi-hot, or the PinSage dense features), title tokens."""
        empty = (tokens == 0).all(dim=-1, keepdim=True)
        title = self.title(tokens) * (~empty).to(torch.float32)  # all-padding bag -> 0
        x = torch.cat([self.movie_id(movie), self.features(features), title], dim=-1)
        return _normalise(self.movie_mlp(x))

    def scale(self, cos: Tensor) -> Tensor:
        lo, hi = self.cfg.rating_min, self.cfg.rating_max
        return lo + (hi - lo) * (cos + 1.0) / 2.0


@dataclass
class TwoTower:
    """A trained two-tower model with the id maps and item features it was trained with."""

    net: TwoTowerNet
    movie_ids: np.ndarray  # item row -> movie id (sorted)
    user_ids: np.ndarray  # user row -> user id (sorted)
    item_features: np.ndarray  # (n_items, feature_dim) float32
    item_tokens: np.ndarray  # (n_items, title_len) int64 hashed title words
    metrics: dict[str, float] = field(default_factory=dict)
    train_info: dict[str, object] = field(default_factory=dict)
    # Popularity prior per item row in [0, 1] (None: served vectors are the towers' alone).
    item_prior: np.ndarray | None = None
    prior_weight: float = 0.0

    @property
    def config(self) -> TwoTowerConfig:
        return self.net.cfg

    @property
    def dim(self) -> int:
        """Width of the served vectors: the towers' ``dim`` (+ 2 with a prior)."""
        return self.net.cfg.dim + (2 if self.item_prior is not None else 0)

    @torch.no_grad()
    def taste_item_embeddings(self) -> np.ndarray:
        """The movie tower's ``(n_items, config.dim)`` L2-normalised vectors (no prior)."""
        self.net.eval()
        rows = torch.arange(1, len(self.movie_ids) + 1)
        v = self.net.item_vectors(
            rows, torch.from_numpy(self.item_features), torch.from_numpy(self.item_tokens)
        )
        return v.numpy().astype(np.float32)

    def item_embeddings(self) -> np.ndarray:
        """``(n_items, dim)`` float32, L2-normalised, row order of :attr:`movie_ids` (the served
        movie vectors: with the prior folded in when the model has one)."""
        taste = self.taste_item_embeddings()
        if self.item_prior is None:
            return taste
        return augment_items(taste, self.item_prior)

    def user_embeddings(
        self,
        genders: np.ndarray,
        ages: np.ndarray,
        occupations: np.ndarray,
        user_rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """Batched served user vectors ``(B, dim)`` from index arrays (see :class:`TwoTowerNet`);
        no ids = new users. Inner products with :meth:`item_embeddings` rank movies by
        ``taste + prior_weight * prior``."""
        taste = self.taste_user_embeddings(genders, ages, occupations, user_rows)
        if self.item_prior is None:
            return taste
        return augment_users(taste, self.prior_weight)

    @torch.no_grad()
    def taste_user_embeddings(
        self,
        genders: np.ndarray,
        ages: np.ndarray,
        occupations: np.ndarray,
        user_rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """The user tower's ``(B, config.dim)`` L2-normalised vectors (no prior)."""
        self.net.eval()
        g = torch.as_tensor(genders, dtype=torch.int64)
        u = torch.zeros_like(g) if user_rows is None else torch.as_tensor(user_rows, dtype=torch.int64) + 1
        v = self.net.user_vectors(
            g, torch.as_tensor(ages, dtype=torch.int64), torch.as_tensor(occupations, dtype=torch.int64), u
        )
        return v.numpy().astype(np.float32)

    def demographic_table(self) -> np.ndarray:
        """New-user vectors for every (gender, age bracket, occupation) combination:
        ``(3, 8, n_occ + 1, dim)``, index 0 = not given. Serving looks vectors up here."""
        n_g, n_a, n_o = len(GENDERS) + 1, len(ML1M_AGES) + 1, len(self.config.occupations) + 1
        g, a, o = np.meshgrid(np.arange(n_g), np.arange(n_a), np.arange(n_o), indexing="ij")
        v = self.user_embeddings(g.ravel(), a.ravel(), o.ravel())
        return v.reshape(n_g, n_a, n_o, self.dim)
