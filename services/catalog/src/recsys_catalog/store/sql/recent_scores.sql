-- Recency-weighted count per movie ($1 half-life in seconds): sum of 0.5^(age / $1) over the
-- ratings of the last 40 half-lives (older weights are below 2^-40 and left out), age from the
-- newest rating; index-only over ratings_recent.
WITH newest AS (SELECT max(rated_at) AS t FROM ratings)
SELECT r.movie_id,
       sum(exp(greatest(-700.0, -ln(2.0) * extract(epoch FROM n.t - r.rated_at)::float8
                                / $1::float8)))::float8 AS score
FROM ratings r, newest n
WHERE r.rated_at >= n.t - make_interval(secs => 40 * $1::float8)
GROUP BY r.movie_id
