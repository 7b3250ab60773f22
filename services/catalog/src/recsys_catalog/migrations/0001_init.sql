-- recsys catalog schema, version 1: movies, users, ratings, genre vocabulary,
-- data set loads. Applied by `recsys catalog migrate` in one transaction.

-- Trusted extensions (PostgreSQL 13+): a database owner may create them.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;

-- Title normalisation for search: lower case, accents removed. unaccent() is
-- only STABLE (its dictionary could change), so an IMMUTABLE wrapper with the
-- dictionary named explicitly is needed for the expression index.
CREATE OR REPLACE FUNCTION catalog_fold(t text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN lower(unaccent('unaccent'::regdictionary, t));

CREATE TABLE movies (
    movie_id     bigint PRIMARY KEY CHECK (movie_id > 0),
    title        text NOT NULL CHECK (title <> '' AND char_length(title) <= 500),
    -- Search key: folded once on write, so searches never run unaccent() per row.
    title_fold   text GENERATED ALWAYS AS (catalog_fold(title)) STORED,
    year         integer,
    genres       text[] NOT NULL DEFAULT '{}',
    imdb_id      text,
    tmdb_id      bigint,
    poster_url   text,
    info_url     text,
    -- Derived from ratings; maintained by the bulk load and RecordRatings.
    rating_count bigint NOT NULL DEFAULT 0 CHECK (rating_count >= 0),
    rating_sum   double precision NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX movies_title_trgm ON movies USING gin (title_fold gin_trgm_ops);
CREATE INDEX movies_genres ON movies USING gin (genres);
CREATE INDEX movies_most_rated ON movies (rating_count DESC, movie_id);

CREATE TABLE genres (
    name text PRIMARY KEY CHECK (name <> '')
);

CREATE TABLE users (
    user_id    bigint PRIMARY KEY CHECK (user_id > 0),
    gender     text CHECK (gender IN ('F', 'M')),
    age        integer CHECK (age BETWEEN 1 AND 120),
    occupation text,
    zip_code   text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (user, movie): the newest event wins.
CREATE TABLE ratings (
    user_id  bigint NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    movie_id bigint NOT NULL REFERENCES movies (movie_id) ON DELETE CASCADE,
    rating   real NOT NULL
        CHECK (rating >= 0.5 AND rating <= 5.0 AND rating * 2 = round(rating * 2)),
    rated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, movie_id)
);
-- History, newest first.
CREATE INDEX ratings_user_recent ON ratings (user_id, rated_at DESC, movie_id);
-- Per-movie aggregates (index-only) and the foreign key's deletes.
CREATE INDEX ratings_movie ON ratings (movie_id) INCLUDE (rating);

CREATE TABLE dataset_loads (
    load_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name      text NOT NULL,
    sha256    text,
    movies    bigint NOT NULL,
    users     bigint NOT NULL,
    ratings   bigint NOT NULL,
    replaced  boolean NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
