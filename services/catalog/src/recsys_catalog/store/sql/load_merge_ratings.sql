-- Merge: newest event per (user, movie) wins, inside the file and against what is stored.
INSERT INTO ratings AS r (user_id, movie_id, rating, rated_at)
SELECT DISTINCT ON (user_id, movie_id) user_id, movie_id, rating, to_timestamp(ts)
FROM load_ratings ORDER BY user_id, movie_id, ts DESC, rating DESC
ON CONFLICT (user_id, movie_id) DO UPDATE
    SET rating = EXCLUDED.rating, rated_at = EXCLUDED.rated_at
    WHERE r.rated_at <= EXCLUDED.rated_at
      AND (r.rating, r.rated_at) IS DISTINCT FROM (EXCLUDED.rating, EXCLUDED.rated_at)
