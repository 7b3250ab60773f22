-- Lock the rows of the known movies among $1, in id order (serialises concurrent writers of a
-- movie, so the recount is exact; also proves the movies exist).
SELECT movie_id FROM movies WHERE movie_id = ANY($1::bigint[]) ORDER BY movie_id FOR UPDATE
