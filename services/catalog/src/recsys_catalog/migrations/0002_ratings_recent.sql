-- Recency-weighted popularity (GetPopular POPULARITY_RANKING_RECENT): the newest rating and
-- the ratings of the last half-lives, index-only.
CREATE INDEX ratings_recent ON ratings (rated_at) INCLUDE (movie_id);
