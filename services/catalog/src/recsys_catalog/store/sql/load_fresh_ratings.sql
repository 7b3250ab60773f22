-- Fresh path: the newest event per (user, movie), in primary-key order.
INSERT INTO ratings (user_id, movie_id, rating, rated_at)
SELECT DISTINCT ON (user_id, movie_id) user_id, movie_id, rating, to_timestamp(ts)
FROM load_ratings ORDER BY user_id, movie_id, ts DESC, rating DESC
