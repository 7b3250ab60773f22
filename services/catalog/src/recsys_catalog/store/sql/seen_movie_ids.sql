-- Every rated movie per user in $1, ids only: an index-only scan of the (user_id, movie_id)
-- primary key.
SELECT user_id, array_agg(movie_id ORDER BY movie_id) AS movie_ids
FROM ratings
WHERE user_id = ANY($1::bigint[])
GROUP BY user_id
