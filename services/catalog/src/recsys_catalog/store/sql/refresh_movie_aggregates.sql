-- Exact recount of rating_count / rating_sum for the movies $1 (their rows are locked by the
-- caller).
UPDATE movies m
SET rating_count = a.c, rating_sum = a.s, updated_at = now()
FROM unnest($1::bigint[]) AS x(id)
CROSS JOIN LATERAL (
    SELECT count(*) AS c, coalesce(sum(r.rating::float8), 0) AS s FROM ratings r WHERE r.movie_id = x.id
) AS a
WHERE m.movie_id = x.id
