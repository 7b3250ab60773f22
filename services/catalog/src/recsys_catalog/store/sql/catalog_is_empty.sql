-- Whether the catalog has no movie (the load then takes the fresh path).
SELECT NOT EXISTS (SELECT 1 FROM movies)
