"""DGL graph work (training only): the user–movie graph, random-walk positive
pairs, and PinSAGE's random-walk neighbour sampling into fixed-size tables."""

from __future__ import annotations

import dgl
import numpy as np
import torch

USER, MOVIE = "user", "movie"
WATCHED, WATCHED_BY = "watched", "watched-by"


def build_graph(user_rows: np.ndarray, item_rows: np.ndarray, n_users: int, n_items: int) -> dgl.DGLGraph:
    """Bipartite heterograph ``user -watched-> movie`` and the reverse edges."""
    u = torch.as_tensor(user_rows, dtype=torch.int64)
    i = torch.as_tensor(item_rows, dtype=torch.int64)
    return dgl.heterograph(
        {(USER, WATCHED, MOVIE): (u, i), (MOVIE, WATCHED_BY, USER): (i, u)},
        num_nodes_dict={USER: n_users, MOVIE: n_items},
    )


def neighbour_table(
    g: dgl.DGLGraph,
    n_neighbours: int = 10,
    num_random_walks: int = 200,
    num_traversals: int = 3,
    termination_prob: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Each movie's top-``n_neighbours`` movies by random-walk visit count.

    Returns ``(ids, weights)`` of shape ``(n_items, n_neighbours)``: item rows
    (padded with the item itself) and visit counts (0 where padded), sorted by
    weight, descending. Uses ``dgl.sampling.PinSAGESampler``.
    """
    n_items = g.num_nodes(MOVIE)
    dgl.seed(seed)
    sampler = dgl.sampling.PinSAGESampler(
        g, MOVIE, USER, num_traversals, termination_prob, num_random_walks, n_neighbours
    )
    frontier = sampler(torch.arange(n_items))
    src, dst = frontier.edges()
    w = frontier.edata["weights"].to(torch.float32)
    keep = src != dst
    src, dst, w = src[keep].numpy(), dst[keep].numpy(), w[keep].numpy()
    # sort by (dst, -weight, src) and take the first n_neighbours per dst
    order = np.lexsort((src, -w, dst))
    src, dst, w = src[order], dst[order], w[order]
    start = np.searchsorted(dst, np.arange(n_items))
    rank = np.arange(len(dst)) - start[dst]
    sel = rank < n_neighbours
    ids = np.tile(np.arange(n_items, dtype=np.int64)[:, None], (1, n_neighbours))
    weights = np.zeros((n_items, n_neighbours), dtype=np.float32)
    ids[dst[sel], rank[sel]] = src[sel]
    weights[dst[sel], rank[sel]] = w[sel]
    return ids, weights


def random_walk_pairs(
    g: dgl.DGLGraph, heads: np.ndarray, restart_rings: int = 1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Positive (head, tail) movie pairs: walk movie -> user -> movie ``restart_rings`` times.

    Pairs whose walk dies or comes back to the head are dropped.
    """
    dgl.seed(seed)
    metapath = [WATCHED_BY, WATCHED] * restart_rings
    traces, _ = dgl.sampling.random_walk(g, torch.as_tensor(heads, dtype=torch.int64), metapath=metapath)
    tails = traces[:, -1].numpy()
    ok = (tails >= 0) & (tails != heads)
    return heads[ok], tails[ok]
