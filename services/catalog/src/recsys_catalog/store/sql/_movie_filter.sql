-- Fragment (a statement includes it by name in double braces): the filter conditions shared by
-- SampleMovies and GetPopular, fixed text, NULL = not given. $1 genres_any, $2 genres_all,
-- $3 year_min, $4 year_max, $5 exclude ids.
    ($1::text[] IS NULL OR m.genres && $1::text[])
AND ($2::text[] IS NULL OR m.genres @> $2::text[])
AND ($3::int IS NULL OR m.year >= $3::int)
AND ($4::int IS NULL OR m.year <= $4::int)
AND NOT EXISTS (SELECT 1 FROM unnest($5::bigint[]) AS x(id) WHERE x.id = m.movie_id)
