-- GetPopular BAYESIAN: $1-$5 the filter, $6 k, $7 prior weight C, $8 prior mean. Bayesian
-- average (sum + C * prior_mean) / (count + C), over movies with at least $9 ratings.
SELECT {{movie_columns}},
       ((m.rating_sum + $7::float8 * $8::float8) / (m.rating_count + $7::float8))::float8 AS score
FROM movies m
WHERE {{movie_filter}}
  AND m.rating_count >= $9::bigint
ORDER BY score DESC, m.rating_count DESC, m.movie_id
LIMIT $6
