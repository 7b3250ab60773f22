"""The sampled next-item softmax (logQ-corrected) against the full softmax, and the
mini-batch item encoder against full-graph propagation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from recsys_embedder.model.pinsage import ModelConfig, PinSageNet
from recsys_embedder.training import sampled as S


def _case(seed: int = 0, n: int = 12, b: int = 5, d: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    user = torch.nn.functional.normalize(torch.randn(b, d, generator=g), dim=1)
    items = torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)
    target = torch.tensor([0, 3, 3, 7, 11])[:b]
    # each row's earlier movies (never its target)
    ex_rows = torch.tensor([0, 0, 1, 2, 2, 2, 4])
    ex_items = torch.tensor([1, 2, 0, 4, 5, 6, 10])
    return {"user": user, "items": items, "target": target, "ex_rows": ex_rows, "ex_items": ex_items}


def _all_once_uniform(n: int) -> S.Negatives:
    # every movie drawn exactly once from q uniform: log c - log(N q) = 0 - log(n * 1/n) = 0
    q = S.negative_distribution(np.zeros(n), alpha=0.0)
    logw = np.log(1.0) - np.log(n * q)
    return S.Negatives(torch.arange(n), torch.as_tensor(logw, dtype=torch.float32))


def test_all_items_sampled_equals_the_full_softmax() -> None:
    c = _case()
    n = len(c["items"])
    full = S.full_softmax_loss(c["user"], c["items"], c["target"], c["ex_rows"], c["ex_items"], 10.0)
    samp = S.sampled_softmax_loss(
        c["user"],
        c["items"][c["target"]],
        c["target"],
        c["items"],
        _all_once_uniform(n),
        c["ex_rows"],
        c["ex_items"],
        10.0,
    )
    assert torch.isfinite(full)
    torch.testing.assert_close(samp, full, rtol=1e-5, atol=1e-6)


def test_gradients_match_the_full_softmax_when_all_items_are_sampled() -> None:
    c = _case(seed=1)
    n = len(c["items"])
    grads = []
    for sampled in (False, True):
        user = c["user"].clone().requires_grad_(True)
        items = c["items"].clone().requires_grad_(True)
        if sampled:
            loss = S.sampled_softmax_loss(
                user,
                items[c["target"]],
                c["target"],
                items,
                _all_once_uniform(n),
                c["ex_rows"],
                c["ex_items"],
                10.0,
            )
        else:
            loss = S.full_softmax_loss(user, items, c["target"], c["ex_rows"], c["ex_items"], 10.0)
        loss.backward()
        assert user.grad is not None and items.grad is not None
        grads.append((user.grad, items.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-5, atol=1e-6)


def test_accidental_hits_are_masked() -> None:
    c = _case(seed=2)
    n = len(c["items"])
    base = S.sampled_softmax_loss(
        c["user"],
        c["items"][c["target"]],
        c["target"],
        c["items"],
        _all_once_uniform(n),
        c["ex_rows"],
        c["ex_items"],
        10.0,
    )
    # drop the target and every history movie from the candidates by hand: same loss
    rows_loss = []
    for r in range(len(c["target"])):
        bad = {int(c["target"][r])} | {
            int(i) for i, rr in zip(c["ex_items"], c["ex_rows"], strict=True) if rr == r
        }
        keep = torch.tensor([j for j in range(n) if j not in bad])
        s = 10.0 * c["user"][r] @ c["items"].T
        rows_loss.append(
            torch.logsumexp(torch.cat([s[c["target"][r] : c["target"][r] + 1], s[keep]]), 0)
            - s[c["target"][r]]
        )
    torch.testing.assert_close(base, torch.stack(rows_loss).mean(), rtol=1e-5, atol=1e-6)


def _partition_estimates(correction_sign: float, draws: int = 4000) -> tuple[float, float]:
    """Mean of exp(logsumexp(corrected negatives)) over many draws vs the exact excluded sum, for
    one user row on a skewed catalog with popularity sampling."""
    c = _case(seed=3)
    n = len(c["items"])
    counts = np.array([500, 200, 100, 50, 20, 10, 5, 3, 2, 1, 0, 0], dtype=np.float64)[:n]
    sampler = S.NegativeSampler(S.negative_distribution(counts, alpha=1.0), n=6)
    rng = np.random.default_rng(0)
    scores = 3.0 * (c["items"] @ c["items"][0])  # one row, the item's own direction: skewed scores
    target = 5
    exact = float(torch.exp(scores).sum() - torch.exp(scores[target]))
    acc = 0.0
    for _ in range(draws):
        neg = sampler.draw(rng)
        # the loss adds log c - log(N q) (log_weight); the wrong sign adds log c + log(N q)
        log_nq = torch.as_tensor(np.log(sampler.n * sampler.q[neg.rows.numpy()]), dtype=torch.float32)
        logw = neg.log_weight if correction_sign > 0 else neg.log_weight + 2 * log_nq
        s = (scores[neg.rows] + logw).masked_fill(neg.rows == target, float("-inf"))
        acc += float(torch.exp(torch.logsumexp(s, 0)))
    return acc / draws, exact


def test_logq_correction_makes_the_partition_estimate_unbiased() -> None:
    est, exact = _partition_estimates(correction_sign=+1.0)
    assert est == pytest.approx(exact, rel=0.05)
    # the opposite sign (adding log q) over-counts the popular movies: far off
    wrong, _ = _partition_estimates(correction_sign=-1.0)
    assert abs(wrong - exact) / exact > 0.5


def test_the_loss_subtracts_the_draw_log_probability() -> None:
    q = S.negative_distribution(np.array([9.0, 1.0, 0.0]), alpha=1.0)
    np.testing.assert_allclose(q, np.array([10, 2, 1]) / 13)
    n = 200_000
    neg = S.NegativeSampler(q, n=n).draw(np.random.default_rng(0))
    assert neg.rows.tolist() == [0, 1, 2]
    # log c_j - log(N q_j) -> 0 as the draws grow (c_j / N -> q_j); adding log(N q_j) instead
    # would give about 2 log(N q_j), i.e. 22 to 25 here
    np.testing.assert_allclose(neg.log_weight.numpy(), 0.0, atol=0.03)


def test_bad_sampler_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        S.negative_distribution(np.ones(3), alpha=-1.0)
    with pytest.raises(ValueError, match="negatives"):
        S.NegativeSampler(np.ones(3) / 3, n=0)


def _net_and_inputs(n: int = 40, t: int = 4) -> tuple[PinSageNet, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    cfg = ModelConfig(n_items=n, dense_dim=6, title_buckets=32, dim=8, hidden=8)
    net = PinSageNet(cfg)
    g = torch.Generator().manual_seed(1)
    dense = torch.randn(n, 6, generator=g)
    tokens = torch.randint(0, 32, (n, 3), generator=g)
    nbr_ids = torch.randint(0, n, (n, t), generator=g)
    nbr_w = torch.rand(n, t, generator=g) * (torch.rand(n, t, generator=g) > 0.2)
    return net, (dense, tokens, nbr_ids, nbr_w)


def test_embed_rows_equals_full_propagation_on_those_rows() -> None:
    net, x = _net_and_inputs()
    full = net.embed_items(*x)
    rows = torch.tensor([0, 3, 17, 39])
    torch.testing.assert_close(net.embed_rows(*x, rows), full[rows], rtol=1e-5, atol=1e-6)
    every = torch.arange(40)
    torch.testing.assert_close(net.embed_rows(*x, every), full, rtol=1e-5, atol=1e-6)


def test_embed_rows_gradients_equal_full_propagation() -> None:
    net, x = _net_and_inputs()
    rows = torch.tensor([2, 5, 8])
    w = torch.randn(3, 8, generator=torch.Generator().manual_seed(4))
    (net.embed_items(*x)[rows] * w).sum().backward()
    ref = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
    net.zero_grad()
    (net.embed_rows(*x, rows) * w).sum().backward()
    got = {k: p.grad for k, p in net.named_parameters() if p.grad is not None}
    assert ref.keys() == got.keys() and ref
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-6)


def test_training_with_the_sampled_loss(tmp_path: Path) -> None:
    pytest.importorskip("dgl", reason="training needs the embedder's [train] extra (DGL)")
    from recsys_data.synthetic import generate
    from recsys_embedder.training.data import load
    from recsys_embedder.training.train import TrainConfig, train

    p = load(str(generate(tmp_path / "ml-tiny", fmt="100k", n_users=40, n_movies=60, n_ratings=900, seed=3)))
    cfg = TrainConfig(
        dim=16,
        hidden=16,
        n_neighbours=4,
        num_random_walks=30,
        epochs=2,
        batch_size=64,
        user_window=8,
        seed=5,
        loss="sampled",
        negatives=32,
    )
    a = train(p, cfg, log=lambda _m: None, progress=False)
    b = train(p, cfg, log=lambda _m: None, progress=False)
    np.testing.assert_array_equal(a.item_embeddings, b.item_embeddings)  # deterministic for a seed
    assert len(a.history) == 2 and all(math.isfinite(h["loss_user"]) for h in a.history)
    full = train(p, TrainConfig(**{**cfg.to_json(), "loss": "full"}), log=lambda _m: None, progress=False)
    assert not np.array_equal(a.item_embeddings, full.item_embeddings)
    with pytest.raises(ValueError, match="unknown loss"):
        train(p, TrainConfig(**{**cfg.to_json(), "loss": "bpr"}), log=lambda _m: None, progress=False)
