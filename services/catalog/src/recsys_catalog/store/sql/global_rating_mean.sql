-- The mean of every rating (the Bayesian prior), NULL when there is none.
SELECT (sum(rating_sum) / NULLIF(sum(rating_count), 0))::float8 FROM movies
