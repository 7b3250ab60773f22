-- The load's ratings as COPYed (ts: unix seconds), dropped at commit.
CREATE TEMP TABLE load_ratings (
    user_id bigint, movie_id bigint, rating real, ts bigint
) ON COMMIT DROP
