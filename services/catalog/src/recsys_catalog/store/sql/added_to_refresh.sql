-- RefreshAddedMovies: the first $2 added movies (id order) whose vector is stale: ratings
-- arrived since it was made, or it was made by another model than $1.
SELECT {{movie_columns}}, m.added_similar_ids
FROM movies m
WHERE m.added_model IS NOT NULL
  AND (m.added_model <> $1 OR m.rating_count <> m.added_rating_count)
ORDER BY m.movie_id
LIMIT $2
