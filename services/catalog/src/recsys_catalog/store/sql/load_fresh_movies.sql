-- Fresh path: movies go in after the ratings, with their aggregates (no second pass over them).
INSERT INTO movies (movie_id, title, year, genres, imdb_id, tmdb_id, rating_count, rating_sum)
SELECT DISTINCT ON (l.movie_id) l.movie_id, l.title, l.year, l.genres, l.imdb_id, l.tmdb_id,
       coalesce(a.c, 0), coalesce(a.s, 0)
FROM load_movies AS l
LEFT JOIN (
    SELECT movie_id, count(*) AS c, sum(rating::float8) AS s FROM ratings GROUP BY movie_id
) AS a ON a.movie_id = l.movie_id
ORDER BY l.movie_id
