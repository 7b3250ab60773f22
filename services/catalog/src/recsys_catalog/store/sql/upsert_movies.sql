-- UpsertMovies: insert or update movies given as columns ($4: each movie's genres joined by the
-- unit separator U+001F, recsys_core.validation.GENRE_SEP: arrays of arrays must be rectangular
-- in PostgreSQL); the ratings aggregates are kept. Returns whether each row was inserted.
INSERT INTO movies AS m (movie_id, title, year, genres, imdb_id, tmdb_id, poster_url, info_url)
SELECT id, title, year, string_to_array(genres, E'\x1f'), imdb_id, tmdb_id, poster_url, info_url
FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::text[],
            $8::text[]) AS x(id, title, year, genres, imdb_id, tmdb_id, poster_url, info_url)
ON CONFLICT (movie_id) DO UPDATE
    SET title = EXCLUDED.title, year = EXCLUDED.year, genres = EXCLUDED.genres,
        imdb_id = EXCLUDED.imdb_id, tmdb_id = EXCLUDED.tmdb_id, poster_url = EXCLUDED.poster_url,
        info_url = EXCLUDED.info_url, updated_at = now()
RETURNING (xmax = 0) AS inserted
