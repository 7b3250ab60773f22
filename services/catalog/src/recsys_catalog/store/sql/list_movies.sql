-- ListMovies: a keyset page of $2 movies after the id $1, in id order.
SELECT {{movie_columns}} FROM movies m WHERE m.movie_id > $1 ORDER BY m.movie_id LIMIT $2
