-- AddMovies, step 1: stage movies given as columns ($4: each movie's genres joined by GENRE_SEP,
-- as upsert_movies.sql; $9: each movie's similar ids joined by ','). A movie staged again gets
-- the new metadata and the next revision. Returns each movie's revision.
INSERT INTO pending_movies AS p (movie_id, title, year, genres, imdb_id, tmdb_id, poster_url,
                                 info_url, similar_ids)
SELECT id, title, year, string_to_array(genres, E'\x1f'), imdb_id, tmdb_id, poster_url, info_url,
       coalesce(string_to_array(nullif(sim, ''), ',')::bigint[], '{}')
FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::text[],
            $8::text[], $9::text[])
     AS x(id, title, year, genres, imdb_id, tmdb_id, poster_url, info_url, sim)
ON CONFLICT (movie_id) DO UPDATE
    SET title = EXCLUDED.title, year = EXCLUDED.year, genres = EXCLUDED.genres,
        imdb_id = EXCLUDED.imdb_id, tmdb_id = EXCLUDED.tmdb_id, poster_url = EXCLUDED.poster_url,
        info_url = EXCLUDED.info_url, similar_ids = EXCLUDED.similar_ids,
        revision = p.revision + 1, staged_at = now()
RETURNING movie_id, revision
