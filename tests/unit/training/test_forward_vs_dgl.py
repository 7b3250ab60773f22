"""The plain-torch forward pass gives DGL message passing's numbers on a tiny graph."""

from __future__ import annotations

import dgl
import dgl.function as fn
import numpy as np
import torch
import torch.nn.functional as F
from recsys_embedder.model.pinsage import ModelConfig, PinSageConv, PinSageNet


def dgl_conv(conv: PinSageConv, g: dgl.DGLGraph, h: torch.Tensor) -> torch.Tensor:
    """DGL's WeightedSAGEConv (examples/pytorch/pinsage/layers.py), eval mode."""
    with g.local_scope():
        g.srcdata["n"] = F.relu(conv.Q(h))
        g.update_all(fn.u_mul_e("n", "w", "m"), fn.sum("m", "n"))
        g.update_all(fn.copy_e("w", "m"), fn.sum("m", "ws"))
        n = g.dstdata["n"]
        ws = g.dstdata["ws"].unsqueeze(1).clamp(min=1)
        z = F.relu(conv.W(torch.cat([n / ws, h], 1)))
        norm = z.norm(2, 1, keepdim=True)
        return z / torch.where(norm == 0, torch.ones_like(norm), norm)


def table_to_graph(ids: np.ndarray, w: np.ndarray) -> dgl.DGLGraph:
    dst = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
    src, ww = ids.reshape(-1), w.reshape(-1)
    keep = ww > 0  # padding is not an edge
    g = dgl.graph((torch.as_tensor(src[keep]), torch.as_tensor(dst[keep])), num_nodes=ids.shape[0])
    g.edata["w"] = torch.as_tensor(ww[keep]).float()
    return g


def test_two_layer_forward_matches_dgl() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n, t = 12, 4
    ids = rng.integers(0, n, size=(n, t))
    w = rng.integers(0, 6, size=(n, t)).astype(np.float32)
    w[3] = 0.0  # a movie without neighbours
    ids[3] = 3
    cfg = ModelConfig(n_items=n, dense_dim=7, title_buckets=16, dim=8, hidden=6)
    model = PinSageNet(cfg).eval()
    dense = torch.randn(n, 7)
    tokens = torch.as_tensor(rng.integers(0, 16, size=(n, 3)))
    ours = model.item_states(dense, tokens, torch.as_tensor(ids), torch.as_tensor(w))

    g = table_to_graph(ids, w)
    h = model.input_repr(dense, tokens, torch.arange(n))
    ref = [h]
    with torch.no_grad():
        for conv in model.convs:
            h = dgl_conv(conv, g, h)
            ref.append(h)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    emb = model.embed_items(dense, tokens, torch.as_tensor(ids), torch.as_tensor(w))
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(n))


def test_new_item_path_equals_known_item_path_without_id_embedding() -> None:
    torch.manual_seed(1)
    n, t = 10, 3
    rng = np.random.default_rng(1)
    ids = torch.as_tensor(rng.integers(0, n, size=(n, t)))
    w = torch.as_tensor(rng.integers(1, 4, size=(n, t)).astype(np.float32))
    cfg = ModelConfig(n_items=n, dense_dim=5, title_buckets=8, dim=8, hidden=8, use_id_embedding=False)
    model = PinSageNet(cfg).eval()
    dense, tokens = torch.randn(n, 5), torch.as_tensor(rng.integers(0, 8, size=(n, 2)))
    with torch.no_grad():
        states = model.item_states(dense, tokens, ids, w)
        known = model.final(states)
        new = model.embed_new_items(dense[:4], tokens[:4], ids[:4], w[:4], states)
    torch.testing.assert_close(new, known[:4])
