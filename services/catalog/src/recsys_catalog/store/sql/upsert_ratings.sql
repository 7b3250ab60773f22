-- RecordRatings: store events ($1 users, $2 movies, $3 ratings, $4 times); returns the
-- (user, movie) pairs written.
INSERT INTO ratings (user_id, movie_id, rating, rated_at)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::real[], $4::timestamptz[])
ON CONFLICT (user_id, movie_id) DO UPDATE
    SET rating = EXCLUDED.rating, rated_at = EXCLUDED.rated_at
    -- Newer wins. A tie on rated_at keeps what is stored (the later writer is told superseded),
    -- unless it is the same event again (a replay: reported stored, changes nothing).
    WHERE ratings.rated_at < EXCLUDED.rated_at
       OR (ratings.rated_at = EXCLUDED.rated_at AND ratings.rating = EXCLUDED.rating)
RETURNING user_id, movie_id
