"""The evaluation protocol every number in the project uses (issue #4): leave-last-out.

Per user, events are ordered by (timestamp, movie id): the last one is TEST, the one before it
VALIDATION, all earlier ones TRAIN. Users with fewer than 3 events go entirely to TRAIN (they
are never evaluated). The movie id breaks timestamp ties, so the split is deterministic and does
not depend on the row order of the file.
"""

from __future__ import annotations

import numpy as np

from recsys_data.model import Interactions

MIN_EVENTS = 3


def leave_last_out(inter: Interactions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks (train, valid, test) over ``inter``'s rows; they partition the rows."""
    n = len(inter)
    train = np.ones(n, dtype=bool)
    valid = np.zeros(n, dtype=bool)
    test = np.zeros(n, dtype=bool)
    if n == 0:
        return train, valid, test
    order = np.lexsort((inter.movie_ids, inter.timestamps, inter.user_ids))
    users = inter.user_ids[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    counts = np.diff(np.r_[starts, n])
    ends = starts + counts  # one past each user's last event, in sorted order
    eligible = counts >= MIN_EVENTS
    test_rows = order[ends[eligible] - 1]
    valid_rows = order[ends[eligible] - 2]
    test[test_rows] = True
    valid[valid_rows] = True
    train[test_rows] = False
    train[valid_rows] = False
    return train, valid, test
