-- The k-th ($6) best Bayesian score ($7 prior weight, $8 prior mean) among the $9 most rated
-- movies matching the filter ($1-$5), through the rating_count index; NULL if there are fewer.
SELECT score FROM (
    SELECT ((m.rating_sum + $7::float8 * $8::float8) / (m.rating_count + $7::float8))::float8 AS score
    FROM movies m
    WHERE {{movie_filter}}
      AND m.rating_count > 0
    ORDER BY m.rating_count DESC, m.movie_id
    LIMIT $9
) AS top
ORDER BY score DESC
OFFSET $6 - 1
LIMIT 1
