-- GetMovies: the movies ($1 ids) and the metadata version they were read at, in one statement
-- (one snapshot); the version row comes back alone (movie columns NULL) when none of the ids
-- is known.
SELECT s.movies_version, {{movie_columns}}
FROM catalog_state s
LEFT JOIN movies m ON m.movie_id = ANY($1::bigint[])
