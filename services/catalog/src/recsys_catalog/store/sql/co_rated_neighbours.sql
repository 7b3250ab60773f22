-- RefreshAddedMovies: for each movie of $1, the $2 movies its raters rated most (number of
-- common raters desc, then rating count desc, then id), itself and other added movies left out
-- (the model knows neither). Movies without ratings are absent.
WITH co AS (
    SELECT a.movie_id AS target, b.movie_id AS other, count(*) AS raters
    FROM ratings a
    JOIN ratings b ON b.user_id = a.user_id AND b.movie_id <> a.movie_id
    WHERE a.movie_id = ANY($1::bigint[])
    GROUP BY a.movie_id, b.movie_id
), ranked AS (
    SELECT co.target, co.other,
           row_number() OVER (PARTITION BY co.target
                              ORDER BY co.raters DESC, m.rating_count DESC, co.other) AS r
    FROM co
    JOIN movies m ON m.movie_id = co.other AND m.added_model IS NULL
)
SELECT target AS movie_id, array_agg(other ORDER BY r) AS neighbour_ids
FROM ranked
WHERE r <= $2
GROUP BY target
