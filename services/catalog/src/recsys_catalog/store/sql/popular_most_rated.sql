-- GetPopular MOST_RATED: $1-$5 the filter, $6 k.
SELECT {{movie_columns}}, m.rating_count::float8 AS score
FROM movies m
WHERE {{movie_filter}}
  AND m.rating_count > 0
ORDER BY m.rating_count DESC, m.movie_id
LIMIT $6
