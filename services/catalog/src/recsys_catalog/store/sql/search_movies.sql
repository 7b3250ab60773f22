-- SearchMovies ($1 query, $2 limit). Similarity reported = mean of whole-title similarity and
-- word similarity (the query as a part of the title): an identical title scores 1, a query that
-- is one word of a long title about 0.6. Candidates: word similarity >=
-- pg_trgm.word_similarity_threshold (0.6), from the trigram GIN index on
-- title_fold = catalog_fold(title).
SELECT {{movie_columns}},
       ((similarity(m.title_fold, q.q) + word_similarity(q.q, m.title_fold)) / 2)::float8 AS score
FROM movies m, (SELECT catalog_fold($1::text) AS q) AS q
WHERE q.q <% m.title_fold
ORDER BY score DESC, m.rating_count DESC, m.movie_id
LIMIT $2
