"""DGL graph builder, PinSAGE neighbour tables, random-walk pairs."""

from __future__ import annotations

import numpy as np
from recsys_embedder.training import graph as G


def test_build_graph_counts() -> None:
    u = np.array([0, 0, 1, 2, 2, 2])
    i = np.array([0, 1, 1, 0, 2, 3])
    g = G.build_graph(u, i, n_users=4, n_items=5)
    assert g.num_nodes(G.USER) == 4 and g.num_nodes(G.MOVIE) == 5
    assert g.num_edges(G.WATCHED) == 6 and g.num_edges(G.WATCHED_BY) == 6
    src, dst = g.edges(etype=G.WATCHED)
    assert sorted(zip(src.tolist(), dst.tolist(), strict=True)) == sorted(
        zip(u.tolist(), i.tolist(), strict=True)
    )
    rs, rd = g.edges(etype=G.WATCHED_BY)
    assert sorted(zip(rd.tolist(), rs.tolist(), strict=True)) == sorted(
        zip(u.tolist(), i.tolist(), strict=True)
    )


def test_neighbour_table_shapes_and_padding(tiny) -> None:  # type: ignore[no-untyped-def]
    sel = tiny.split == 0
    g = G.build_graph(tiny.u[sel], tiny.i[sel], tiny.n_users, tiny.n_items)
    ids, w = G.neighbour_table(g, n_neighbours=5, num_random_walks=50, seed=1)
    assert ids.shape == (tiny.n_items, 5) and w.shape == (tiny.n_items, 5)
    assert ids.dtype == np.int64 and w.dtype == np.float32
    assert ids.min() >= 0 and ids.max() < tiny.n_items
    assert (w >= 0).all()
    assert (np.diff(w, axis=1) <= 0).all(), "weights sorted, descending"
    rows = np.arange(tiny.n_items)[:, None]
    assert not ((ids == rows) & (w > 0)).any(), "a movie is not its own neighbour"
    assert ((ids == rows) | (w > 0)).all(), "padding points at the movie itself with weight 0"
    assert (w[:, 0] > 0).mean() > 0.9  # almost every movie has neighbours on this dense toy graph


def test_isolated_movie_gets_only_padding() -> None:
    g = G.build_graph(np.array([0, 0, 1]), np.array([0, 1, 1]), n_users=2, n_items=3)
    ids, w = G.neighbour_table(g, n_neighbours=4, num_random_walks=20, seed=0)
    assert (w[2] == 0).all() and (ids[2] == 2).all()
    assert ids[0, 0] == 1 and w[0, 0] > 0


def test_random_walk_pairs_are_co_watched(tiny) -> None:  # type: ignore[no-untyped-def]
    sel = tiny.split == 0
    g = G.build_graph(tiny.u[sel], tiny.i[sel], tiny.n_users, tiny.n_items)
    heads = np.arange(tiny.n_items).repeat(3)
    h, t = G.random_walk_pairs(g, heads, seed=0)
    assert len(h) == len(t) > 0 and (h != t).all()
    watched = {(int(u), int(i)) for u, i in zip(tiny.u[sel], tiny.i[sel], strict=True)}
    users_of: dict[int, set[int]] = {}
    for u, i in watched:
        users_of.setdefault(i, set()).add(u)
    assert all(users_of[int(a)] & users_of[int(b)] for a, b in zip(h, t, strict=True))
