-- Both paths: create the users only present in the ratings (ml-latest has no users file).
INSERT INTO users (user_id)
SELECT DISTINCT user_id FROM load_ratings ORDER BY user_id
ON CONFLICT (user_id) DO NOTHING
