-- The pending movies (AddMovies staged, not yet promoted), oldest staging first, at most $1.
SELECT movie_id, title, year, genres, imdb_id, tmdb_id, poster_url, info_url, similar_ids, revision
FROM pending_movies
ORDER BY staged_at, movie_id
LIMIT $1
