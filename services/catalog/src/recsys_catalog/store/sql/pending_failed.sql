-- A failed AddMovies attempt of the pending movies $1: count it and keep why ($2).
UPDATE pending_movies SET attempts = attempts + 1, last_error = $2 WHERE movie_id = ANY($1::bigint[])
