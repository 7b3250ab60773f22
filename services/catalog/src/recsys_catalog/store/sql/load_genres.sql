-- Both paths: the loaded movies' genres join the vocabulary.
INSERT INTO genres (name)
SELECT DISTINCT g FROM load_movies, unnest(genres) AS g WHERE g <> '' ORDER BY g
ON CONFLICT (name) DO NOTHING
