-- How many movies are pending (staged by AddMovies, not listed yet).
SELECT count(*) FROM pending_movies
