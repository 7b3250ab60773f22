-- RefreshAddedMovies: movies $1 re-embedded by model $5: inductive ($2 true) ones keep being
-- added movies, now of that model, with the rating count $3 their neighbours $4 (comma-joined)
-- were read at; the others ($2 false: the model knows them) are added movies no more.
UPDATE movies AS m
SET added_model = CASE WHEN x.inductive THEN $5::text END,
    added_rating_count = CASE WHEN x.inductive THEN x.seen END,
    added_similar_ids = CASE WHEN x.inductive THEN m.added_similar_ids END,
    added_neighbour_ids = CASE WHEN x.inductive THEN string_to_array(x.neighbours, ',')::bigint[] END
FROM unnest($1::bigint[], $2::boolean[], $3::bigint[], $4::text[]) AS x(id, inductive, seen, neighbours)
WHERE m.movie_id = x.id AND m.added_model IS NOT NULL
