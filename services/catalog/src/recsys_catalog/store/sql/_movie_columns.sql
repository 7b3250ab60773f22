-- Fragment (a statement includes it by name in double braces): the columns of a movie row,
-- as the store's _movie() reads them.
m.movie_id, m.title, m.year, m.genres, m.imdb_id, m.tmdb_id, m.poster_url, m.info_url,
m.rating_count, m.rating_sum, (m.added_model IS NOT NULL) AS added_since_training
