-- The $2 newest ratings and the rating count of each user in $1, a row per event (a user
-- without ratings: one row, event columns NULL), newest first, ties by movie id.
SELECT u.user_id, t.total, r.movie_id, r.rating, r.rated_at
FROM unnest($1::bigint[]) AS u(user_id)
CROSS JOIN LATERAL (SELECT count(*) AS total FROM ratings c WHERE c.user_id = u.user_id) AS t
LEFT JOIN LATERAL (
    SELECT h.movie_id, h.rating, h.rated_at
    FROM ratings h
    WHERE h.user_id = u.user_id
    ORDER BY h.rated_at DESC, h.movie_id
    LIMIT $2
) AS r ON true
ORDER BY u.user_id, r.rated_at DESC, r.movie_id
