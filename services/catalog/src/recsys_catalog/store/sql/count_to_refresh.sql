-- RefreshAddedMovies: how many added movies have a stale vector under model $1.
SELECT count(*)
FROM movies m
WHERE m.added_model IS NOT NULL
  AND (m.added_model <> $1 OR m.rating_count <> m.added_rating_count)
