-- GetPopular RECENT: the top $6 by given scores ($1-$5 the filter, $7 ids, $8 their scores; a
-- rated movie without one scores 0 and follows by rating count).
SELECT {{movie_columns}}, coalesce(rc.score, 0.0)::float8 AS score
FROM movies m LEFT JOIN unnest($7::bigint[], $8::float8[]) AS rc(movie_id, score)
    ON rc.movie_id = m.movie_id
WHERE {{movie_filter}}
  AND m.rating_count > 0
ORDER BY score DESC, m.rating_count DESC, m.movie_id
LIMIT $6
