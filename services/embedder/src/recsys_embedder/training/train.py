"""PinSage training loop: full-graph item propagation over fixed neighbour
tables, a max-margin item-item loss on random-walk pairs (as in the paper)
plus a next-item softmax loss for the user-as-a-node aggregation.

Steps (DGL's pipeline, one per file): build graph (:mod:`.graph`) -> sample
neighbours (PinSAGESampler) -> layers/model (:mod:`recsys_embedder.model`) ->
train (here) -> evaluate (:mod:`recsys_embedder.evaluation`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from recsys_embedder.evaluation.evaluate import Phase, evaluate_scorer, make_phase, pinsage_scorer
from recsys_embedder.model.features import FeatureSpec, movie_features
from recsys_embedder.model.pinsage import ModelConfig, PinSageNet
from recsys_embedder.training import graph as G
from recsys_embedder.training import sampled as S
from recsys_embedder.training.data import TRAIN, Prepared
from recsys_embedder.training.distributed import Distributed

Log = Callable[[str], None]


@dataclass
class TrainConfig:
    """Hyperparameters (all stored in the manifest)."""

    dim: int = 64
    hidden: int = 64
    n_neighbours: int = 10
    num_random_walks: int = 1000
    num_traversals: int = 3
    termination_prob: float = 0.5
    use_id_embedding: bool = True
    dropout: float = 0.0
    user_window: int = 50
    title_buckets: int = 4096
    epochs: int = 15
    patience: int = 3
    batch_size: int = 1024
    lr: float = 5e-3
    weight_decay: float = 0.0
    logit_scale: float = 10.0
    item_loss_weight: float = 0.5
    item_batch_size: int = 1024
    margin: float = 0.3
    hard_negative_share: float = 0.5
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    max_steps_per_epoch: int = 0  # 0 = a full pass over the TRAIN next-item events
    loss: str = "full"  # next-item loss: "full" softmax over the catalog or "sampled" (see .sampled)
    negatives: int = 1024  # sampled loss: negatives drawn per step (shared by the batch)
    negative_alpha: float = 0.75  # sampled loss: q ∝ (TRAIN count + 1)^alpha; 0 = uniform

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    model: PinSageNet
    model_config: ModelConfig
    feature_spec: FeatureSpec
    item_dense: np.ndarray
    item_tokens: np.ndarray
    nbr_ids: np.ndarray
    nbr_w: np.ndarray
    item_embeddings: np.ndarray
    best_epoch: int
    best_validation_hr10: float
    history: list[dict[str, float]] = field(default_factory=list)
    training_time_s: float = 0.0
    training_cpu_s: float = 0.0
    #: seconds of each epoch's step loop (no validation) run by this call (not by a resumed one)
    step_seconds: list[float] = field(default_factory=list)


def item_inputs(p: Prepared, title_buckets: int = 4096) -> tuple[FeatureSpec, np.ndarray, np.ndarray]:
    counts = p.counts(TRAIN)
    spec = FeatureSpec(
        genres=p.genre_vocab, title_buckets=title_buckets, pop_log_max=float(np.log1p(max(counts.max(), 1)))
    )
    dense, tokens = movie_features(spec, p.titles, p.years, p.genres, counts)
    return spec, dense, tokens


class _NextItem:
    """Next-item training events over the TRAIN sequences (vectorised batches)."""

    def __init__(self, p: Prepared, window: int) -> None:
        sel = p.split == TRAIN
        self.items = p.i[sel]
        self.ratings = p.r[sel]
        users = p.u[sel]
        starts = np.searchsorted(users, np.arange(p.n_users))
        self.start = starts[users]  # per event: its user's first event
        self.events = np.flatnonzero(np.arange(len(users)) > self.start)  # has >= 1 previous event
        self.window = window

    def batch(self, ev: np.ndarray) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        K = self.window
        idx = ev[:, None] - K + np.arange(K)[None, :]
        valid = idx >= self.start[ev][:, None]
        idx = np.where(valid, idx, 0)
        hist = torch.as_tensor(self.items[idx])
        rat = torch.as_tensor(self.ratings[idx])
        mask = torch.as_tensor(valid)
        target = torch.as_tensor(self.items[ev])
        # every earlier item of the user is excluded from the softmax
        lens = ev - self.start[ev]
        rows = np.repeat(np.arange(len(ev)), lens)
        pos = (
            np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(self.start[ev], lens)
        )
        return hist, rat, mask, target, torch.as_tensor(rows), torch.as_tensor(self.items[pos])


class _StepLoss(nn.Module):
    """One step's losses (next-item, item-item) as a module's ``forward``: the unit that
    DistributedDataParallel wraps (its gradient hooks need the forward pass to run through it)."""

    def __init__(self, model: PinSageNet, tensors: tuple[Tensor, ...], cfg: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.tensors = tensors  # (dense, tokens, nbr_ids, nbr_w): inputs, not parameters
        self.logit_scale = cfg.logit_scale
        self.margin = cfg.margin

    def forward(
        self,
        hist: Tensor,
        rat: Tensor,
        mask: Tensor,
        target: Tensor,
        ex_rows: Tensor,
        ex_items: Tensor,
        hh: Tensor,
        tt: Tensor,
        nn_: Tensor,
        drawn: S.Negatives | None,
    ) -> tuple[Tensor, Tensor]:
        model, tensors = self.model, self.tensors
        dev = target.device
        if drawn is None:  # full softmax: every movie encoded and scored
            emb = model.embed_items(*tensors)
            if len(target):
                u = model.embed_users(emb, hist, rat, mask, "pinsage")
                loss_u = S.full_softmax_loss(u, emb, target, ex_rows, ex_items, self.logit_scale)
            else:  # an empty slice (a batch smaller than the process count): no rows, no loss
                loss_u = _zero(model)
            at: tuple[Tensor, ...] = (hh, tt, nn_)
        else:  # sampled softmax: only the movies this step touches are encoded
            nr = drawn.rows.to(dev)
            touched = torch.unique(torch.cat([target, hist.reshape(-1), nr, hh, tt, nn_]))
            emb = model.embed_rows(tensors[0], tensors[1], tensors[2], tensors[3], touched)
            if len(target):
                u = model.embed_users(emb, torch.searchsorted(touched, hist), rat, mask, "pinsage")
                loss_u = S.sampled_softmax_loss(
                    u,
                    emb[torch.searchsorted(touched, target)],
                    target,
                    emb[torch.searchsorted(touched, nr)],
                    drawn,
                    ex_rows,
                    ex_items,
                    self.logit_scale,
                )
            else:
                loss_u = _zero(model)
            at = tuple(torch.searchsorted(touched, x) for x in (hh, tt, nn_))
        pos_s = (emb[at[0]] * emb[at[1]]).sum(1)
        neg_s = (emb[at[0]] * emb[at[2]]).sum(1)
        loss_i = F.relu(neg_s - pos_s + self.margin).mean() if len(hh) else torch.zeros((), device=dev)
        return loss_u, loss_i


def _zero(model: nn.Module) -> Tensor:
    """A zero loss connected to every parameter (so a backward pass reaches all of them)."""
    params = list(model.parameters())
    return sum((p.sum() for p in params), torch.zeros((), device=params[0].device)) * 0.0


def all_events(p: Prepared) -> Prepared:
    """``p`` with every event labelled TRAIN: the refit of the served model (no VALIDATION,
    no TEST; the settings and epoch count come from the run that had them)."""
    return dataclasses.replace(p, split=np.full_like(p.split, TRAIN))


def _validate(model: PinSageNet, tensors: tuple[Tensor, ...], p: Prepared, phase: Phase) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        emb = model.embed_items(*tensors)
        return evaluate_scorer(phase, pinsage_scorer(model, emb, p, phase, "pinsage"))


def train(
    p: Prepared,
    cfg: TrainConfig,
    checkpoint: Path | None = None,
    log: Log = print,
    progress: bool = True,
    dist: Distributed | None = None,
) -> TrainResult:
    """Train on ``p``'s TRAIN events; early stopping on VALIDATION HR@10 (pinsage form).

    When ``p`` has no VALIDATION event (a refit on every event, see :func:`all_events`), it
    trains exactly ``cfg.epochs`` epochs and keeps the last state.

    With ``checkpoint`` the state is saved there after every epoch and a run
    finding one resumes from it (same config and seed: same result).

    With ``dist`` (a torchrun process, :mod:`.distributed`; its process group initialised) the
    network is wrapped in DistributedDataParallel and each rank trains on its slice of every
    global batch of ``cfg.batch_size``: the same updates as one process with that batch. Every
    rank returns the same weights; only rank 0 writes the checkpoint, and a run resumes only
    when every rank sees one.
    """
    if cfg.loss not in S.LOSSES:
        raise ValueError(f"unknown loss {cfg.loss!r}; expected one of {S.LOSSES}")
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    dev = torch.device(dist.device(cfg.device) if dist is not None else cfg.device)
    spec, dense, tokens = item_inputs(p, cfg.title_buckets)
    sel = p.split == TRAIN
    g = G.build_graph(p.u[sel], p.i[sel], p.n_users, p.n_items)
    nbr_ids, nbr_w = G.neighbour_table(
        g, cfg.n_neighbours, cfg.num_random_walks, cfg.num_traversals, cfg.termination_prob, seed=cfg.seed
    )
    log(f"graph: {p.n_users} users, {p.n_items} movies, {int(sel.sum())} TRAIN edges; neighbours sampled")
    mcfg = ModelConfig(
        n_items=p.n_items,
        dense_dim=spec.dense_dim,
        title_buckets=cfg.title_buckets,
        dim=cfg.dim,
        hidden=cfg.hidden,
        use_id_embedding=cfg.use_id_embedding,
        dropout=cfg.dropout,
        user_window=cfg.user_window,
    )
    model = PinSageNet(mcfg).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    tensors = tuple(
        torch.as_tensor(a).to(dev) for a in (dense, tokens, nbr_ids, nbr_w)
    )  # (dense, tokens, nbr_ids, nbr_w)
    step_loss = _StepLoss(model, tensors, cfg)
    step_fn: nn.Module = step_loss if dist is None else dist.wrap(step_loss, str(dev))
    nxt = _NextItem(p, cfg.user_window)
    counts = p.counts(TRAIN).astype(np.float64)
    heads_pool = np.flatnonzero(counts > 0)
    hard_p = counts**0.75 / (counts**0.75).sum()
    sampler = (
        S.NegativeSampler(S.negative_distribution(counts, cfg.negative_alpha), cfg.negatives)
        if cfg.loss == "sampled"
        else None
    )
    val_phase = make_phase(p, "validation")
    validate = len(val_phase.users) > 0

    start_epoch, best, best_epoch, bad = 1, -1.0, 0, 0
    best_state: dict[str, Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[dict[str, float]] = []
    step_seconds: list[float] = []
    resume = checkpoint is not None and checkpoint.exists()
    if dist is not None:
        resume = dist.all_agree(resume)
    if checkpoint is not None and resume:
        ck = torch.load(checkpoint, weights_only=True, map_location=dev)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        best_state = ck["best_state"]
        start_epoch, best, best_epoch, bad = (
            int(ck["epoch"]) + 1,
            float(ck["best"]),
            int(ck["best_epoch"]),
            int(ck["bad"]),
        )
        history = list(ck["history"])
        log(f"resumed from {checkpoint} after epoch {start_epoch - 1}")

    for epoch in range(start_epoch, cfg.epochs + 1):
        if bad >= cfg.patience:
            break
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        ev = rng.permutation(nxt.events)
        n_steps = math.ceil(len(ev) / cfg.batch_size)
        if cfg.max_steps_per_epoch:
            n_steps = min(n_steps, cfg.max_steps_per_epoch)
        heads = rng.choice(heads_pool, size=n_steps * cfg.item_batch_size * 2)
        ph, pt = G.random_walk_pairs(g, heads, seed=cfg.seed * 7919 + epoch)
        model.train()
        t0 = time.perf_counter()
        bar = tqdm(range(n_steps), desc=f"epoch {epoch}", disable=not progress, file=sys.stderr, leave=False)
        tot_u = tot_i = 0.0
        for step in bar:
            b = ev[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            # max-margin on random-walk pairs, uniform + popularity-weighted negatives
            s = step * cfg.item_batch_size
            hh = torch.as_tensor(ph[s : s + cfg.item_batch_size]).to(dev)
            tt = torch.as_tensor(pt[s : s + cfg.item_batch_size]).to(dev)
            n_hard = int(len(hh) * cfg.hard_negative_share)
            neg = np.concatenate(
                [rng.choice(p.n_items, size=n_hard, p=hard_p), rng.integers(0, p.n_items, len(hh) - n_hard)]
            )
            nn_ = torch.as_tensor(neg).to(dev)
            drawn = sampler.draw(rng) if sampler is not None else None
            if dist is not None:  # this rank's slice of the global batch (same rng draws everywhere)
                su, si = dist.shard(len(b)), dist.shard(len(hh))
                scale_u, scale_i = dist.loss_scale(len(b[su]), len(b)), dist.loss_scale(len(hh[si]), len(hh))
                b, hh, tt, nn_ = b[su], hh[si], tt[si], nn_[si]
            hist, rat, mask, target, ex_rows, ex_items = (x.to(dev) for x in nxt.batch(b))
            loss_u, loss_i = step_fn(hist, rat, mask, target, ex_rows, ex_items, hh, tt, nn_, drawn)
            if dist is None:
                loss = loss_u + cfg.item_loss_weight * loss_i
            else:  # DDP averages gradients over ranks: scaled, that is the global batch's mean
                loss = scale_u * loss_u + cfg.item_loss_weight * scale_i * loss_i
            opt.zero_grad()
            loss.backward()
            opt.step()
            if dist is None:
                tot_u += float(loss_u.detach())
                tot_i += float(loss_i.detach())
            else:  # the global batch's mean losses (what one process would log)
                lu, li = dist.all_reduce_sum(
                    [scale_u * float(loss_u.detach()), scale_i * float(loss_i.detach())], dev.type
                )
                tot_u += lu / dist.world_size
                tot_i += li / dist.world_size
            if step % 20 == 0:
                rate = (step + 1) * cfg.batch_size / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(
                    loss_u=f"{tot_u / (step + 1):.3f}", loss_i=f"{tot_i / (step + 1):.3f}", ev_s=f"{rate:.0f}"
                )
        bar.close()
        step_seconds.append(time.perf_counter() - t0)
        val = _validate(model, tensors, p, val_phase) if validate else {"hr@10": 0.0, "ndcg@10": 0.0}
        row = {
            "epoch": float(epoch),
            "loss_user": tot_u / max(n_steps, 1),
            "loss_item": tot_i / max(n_steps, 1),
            "valid_hr@10": val["hr@10"],
            "valid_ndcg@10": val["ndcg@10"],
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        log(
            f"epoch {epoch}: loss_user {row['loss_user']:.4f} loss_item {row['loss_item']:.4f} "
            f"valid hr@10 {val['hr@10']:.4f} ndcg@10 {val['ndcg@10']:.4f} ({row['seconds']:.1f}s)"
        )
        if not validate or val["hr@10"] > best:
            best, best_epoch, bad = val["hr@10"], epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
        if checkpoint is not None and (dist is None or dist.is_main):
            tmp = checkpoint.with_suffix(".tmp")
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "best_state": best_state,
                    "epoch": epoch,
                    "best": best,
                    "best_epoch": best_epoch,
                    "bad": bad,
                    "history": history,
                },
                tmp,
            )
            tmp.replace(checkpoint)

    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        final_emb = model.embed_items(*tensors).cpu().numpy().astype(np.float32)
    return TrainResult(
        model=model.cpu(),
        model_config=mcfg,
        feature_spec=spec,
        item_dense=dense,
        item_tokens=tokens,
        nbr_ids=nbr_ids,
        nbr_w=nbr_w,
        item_embeddings=final_emb,
        best_epoch=best_epoch,
        best_validation_hr10=best,
        history=history,
        training_time_s=time.perf_counter() - t_start,
        training_cpu_s=time.process_time() - cpu_start,
        step_seconds=step_seconds,
    )
