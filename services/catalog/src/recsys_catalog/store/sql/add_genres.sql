-- Add the genres $1 (non-empty) to the vocabulary.
INSERT INTO genres (name)
SELECT DISTINCT g FROM unnest($1::text[]) AS x(g) WHERE g <> '' ORDER BY g
ON CONFLICT (name) DO NOTHING
