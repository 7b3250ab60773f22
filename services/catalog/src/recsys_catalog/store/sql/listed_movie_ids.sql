-- Which of the ids $1 are listed movies (AddMovies' similar ids must be).
SELECT movie_id FROM movies WHERE movie_id = ANY($1::bigint[])
