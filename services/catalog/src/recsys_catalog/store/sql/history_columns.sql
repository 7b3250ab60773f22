-- histories.sql (+ seen_movie_ids.sql when $3) as columns, one row per known user in $1, in ONE
-- statement: one snapshot without a transaction, one round trip instead of five (BEGIN, users,
-- events, seen ids, COMMIT), arrays instead of a row per event. Same order as histories.sql
-- (newest first, ties by movie id); rated_at as exact microseconds since the epoch (extract
-- returns numeric).
SELECT u.user_id,
       (SELECT count(*) FROM ratings c WHERE c.user_id = u.user_id) AS total,
       h.movie_ids, h.ratings, h.rated_at_us,
       CASE WHEN $3::boolean THEN
           ARRAY(SELECT s.movie_id FROM ratings s WHERE s.user_id = u.user_id ORDER BY s.movie_id)
       END AS seen
FROM users u
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(x.movie_id ORDER BY x.rated_at DESC, x.movie_id), '{}') AS movie_ids,
           coalesce(array_agg(x.rating ORDER BY x.rated_at DESC, x.movie_id), '{}') AS ratings,
           coalesce(array_agg((extract(epoch FROM x.rated_at) * 1000000)::bigint
                              ORDER BY x.rated_at DESC, x.movie_id), '{}') AS rated_at_us
    FROM (
        SELECT r.movie_id, r.rating, r.rated_at
        FROM ratings r
        WHERE r.user_id = u.user_id
        ORDER BY r.rated_at DESC, r.movie_id
        LIMIT $2
    ) AS x
) AS h
WHERE u.user_id = ANY($1::bigint[])
