-- Merge: upsert the loaded movies; unchanged rows are not rewritten.
INSERT INTO movies AS m (movie_id, title, year, genres, imdb_id, tmdb_id)
SELECT DISTINCT ON (movie_id) movie_id, title, year, genres, imdb_id, tmdb_id
FROM load_movies ORDER BY movie_id
ON CONFLICT (movie_id) DO UPDATE
    SET title = EXCLUDED.title, year = EXCLUDED.year, genres = EXCLUDED.genres,
        imdb_id = EXCLUDED.imdb_id, tmdb_id = EXCLUDED.tmdb_id, updated_at = now()
    WHERE (m.title, m.year, m.genres, m.imdb_id, m.tmdb_id)
          IS DISTINCT FROM (EXCLUDED.title, EXCLUDED.year, EXCLUDED.genres, EXCLUDED.imdb_id,
                            EXCLUDED.tmdb_id)
