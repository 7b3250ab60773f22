-- AddMovies, last step: move the pending movies $1 whose revision is still $2 (parallel arrays)
-- into movies, in one statement (a pending row is deleted exactly when its movie is written).
-- Ratings aggregates of a movie already listed are kept. Returns whether each was inserted.
WITH done AS (
    DELETE FROM pending_movies p
    USING unnest($1::bigint[], $2::bigint[]) AS x(id, revision)
    WHERE p.movie_id = x.id AND p.revision = x.revision
    RETURNING p.movie_id, p.title, p.year, p.genres, p.imdb_id, p.tmdb_id, p.poster_url, p.info_url
)
INSERT INTO movies AS m (movie_id, title, year, genres, imdb_id, tmdb_id, poster_url, info_url)
SELECT movie_id, title, year, genres, imdb_id, tmdb_id, poster_url, info_url FROM done
ON CONFLICT (movie_id) DO UPDATE
    SET title = EXCLUDED.title, year = EXCLUDED.year, genres = EXCLUDED.genres,
        imdb_id = EXCLUDED.imdb_id, tmdb_id = EXCLUDED.tmdb_id, poster_url = EXCLUDED.poster_url,
        info_url = EXCLUDED.info_url, updated_at = now()
RETURNING movie_id, (xmax = 0) AS inserted
