-- SampleMovies: $1-$5 the filter, $6 min ratings, $7 seed, $8 n; the same seed and catalog
-- give the same list.
SELECT {{movie_columns}}
FROM movies m
WHERE {{movie_filter}}
  AND m.rating_count >= $6::bigint
ORDER BY hashint8extended(m.movie_id, $7::bigint), m.movie_id
LIMIT $8
