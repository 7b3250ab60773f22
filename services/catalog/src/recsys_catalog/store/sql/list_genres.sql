-- The genre vocabulary, by name.
SELECT name FROM genres ORDER BY name
