-- AddMovies, inside the promotion's transaction: the promoted movies $1 with an inductive
-- vector ($2 true) become added movies of model $4 (their rating count now, their similar
-- ids $3 comma-joined as the neighbours); those with the model's trained vector ($2 false)
-- are not added ones.
UPDATE movies AS m
SET added_model = CASE WHEN x.inductive THEN $4::text END,
    added_rating_count = CASE WHEN x.inductive THEN m.rating_count END,
    added_similar_ids = CASE WHEN x.inductive THEN string_to_array(x.similar_text, ',')::bigint[] END,
    added_neighbour_ids = CASE WHEN x.inductive THEN string_to_array(x.similar_text, ',')::bigint[] END
FROM unnest($1::bigint[], $2::boolean[], $3::text[]) AS x(id, inductive, similar_text)
WHERE m.movie_id = x.id
