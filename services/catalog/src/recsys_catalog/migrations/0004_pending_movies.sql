-- Movies staged by AddMovies (issue #20) until their vector is in the retriever. A row here is
-- not a movie yet: no read RPC looks at this table, so a pending movie is neither listed nor
-- searchable nor ratable. The promotion copies the row into movies and deletes it in one
-- transaction; a failed AddMovies leaves the row for a retry (the same call again, or
-- RetryPendingMovies). ``revision`` grows with every staging of the same id, so a promotion
-- never publishes metadata older than the latest staged.
CREATE TABLE pending_movies (
    movie_id    bigint PRIMARY KEY CHECK (movie_id > 0),
    title       text NOT NULL CHECK (title <> '' AND char_length(title) <= 500),
    year        integer,
    genres      text[] NOT NULL DEFAULT '{}',
    imdb_id     text,
    tmdb_id     bigint,
    poster_url  text,
    info_url    text,
    similar_ids bigint[] NOT NULL DEFAULT '{}',
    revision    bigint NOT NULL DEFAULT 1,
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    staged_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_movies_staged ON pending_movies (staged_at, movie_id);
