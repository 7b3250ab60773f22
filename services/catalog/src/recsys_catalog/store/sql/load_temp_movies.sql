-- The load's movies as COPYed (movie_id, title, year, genres, imdb_id, tmdb_id), dropped at commit.
CREATE TEMP TABLE load_movies (
    movie_id bigint, title text, year integer, genres text[], imdb_id text, tmdb_id bigint
) ON COMMIT DROP
