-- Merge: full recount; rows whose aggregates did not change are not rewritten.
UPDATE movies m
SET rating_count = coalesce(a.c, 0), rating_sum = coalesce(a.s, 0), updated_at = now()
FROM movies m2
LEFT JOIN (
    SELECT movie_id, count(*) AS c, sum(rating::float8) AS s FROM ratings GROUP BY movie_id
) AS a ON a.movie_id = m2.movie_id
WHERE m.movie_id = m2.movie_id
  AND (m.rating_count, m.rating_sum) IS DISTINCT FROM (coalesce(a.c, 0), coalesce(a.s, 0))
