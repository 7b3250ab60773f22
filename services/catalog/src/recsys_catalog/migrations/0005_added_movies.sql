-- Movies AddMovies listed with an inductive vector (issue #20): the model was trained without
-- them. ``added_model`` is the embedder model that made the vector (NULL for data-set movies and
-- once a model knows the movie), ``added_rating_count`` the ratings the movie had when it was
-- embedded, ``added_similar_ids`` the similar ids it was added with, ``added_neighbour_ids`` the
-- neighbours its current vector was made from. RefreshAddedMovies re-embeds a movie whose
-- rating_count differs from added_rating_count (it got ratings: its neighbourhood changed) or
-- whose added_model is not the embedder's model.
ALTER TABLE movies
    ADD COLUMN added_model text,
    ADD COLUMN added_rating_count bigint,
    ADD COLUMN added_similar_ids bigint[],
    ADD COLUMN added_neighbour_ids bigint[];
CREATE INDEX movies_added ON movies (movie_id) WHERE added_model IS NOT NULL;

-- GetMovies answers say whether a movie is an added one (Movie.added_since_training): a change
-- of added_model is a metadata change for the caches keyed by the metadata version.
DROP TRIGGER movies_metadata_changed ON movies;
CREATE TRIGGER movies_metadata_changed
    AFTER INSERT OR DELETE
       OR UPDATE OF movie_id, title, year, genres, imdb_id, tmdb_id, poster_url, info_url, added_model
    ON movies FOR EACH STATEMENT EXECUTE FUNCTION catalog_bump_movies_version();
