-- Version of the movie metadata (issue #15): GetMovies answers carry it, so a cache keyed by
-- movie id (the gateway's) knows when what it holds may have changed. It changes with every
-- statement that inserts, deletes or truncates movies or updates their metadata columns; the
-- rating aggregates (rating_count, rating_sum) are not metadata and leave it alone (caches bound
-- their staleness by age instead). Values grow: the next version is the larger of the last one
-- plus one and the current time in microseconds, so a database created anew after this one
-- still moves forward.
CREATE TABLE catalog_state (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    movies_version bigint NOT NULL CHECK (movies_version > 0)
);
INSERT INTO catalog_state (movies_version)
VALUES ((extract(epoch FROM clock_timestamp()) * 1000000)::bigint);

CREATE FUNCTION catalog_bump_movies_version() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_state
    SET movies_version = greatest(movies_version + 1,
                                  (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
    RETURN NULL;
END
$$;

CREATE TRIGGER movies_metadata_changed
    AFTER INSERT OR DELETE
       OR UPDATE OF movie_id, title, year, genres, imdb_id, tmdb_id, poster_url, info_url
    ON movies FOR EACH STATEMENT EXECUTE FUNCTION catalog_bump_movies_version();
CREATE TRIGGER movies_truncated
    AFTER TRUNCATE ON movies FOR EACH STATEMENT EXECUTE FUNCTION catalog_bump_movies_version();
