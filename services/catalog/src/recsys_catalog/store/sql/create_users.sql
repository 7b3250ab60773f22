-- Create the users among $1 that do not exist yet (no demographics); returns those created.
INSERT INTO users (user_id)
SELECT DISTINCT id FROM unnest($1::bigint[]) AS x(id) ORDER BY id
ON CONFLICT (user_id) DO NOTHING
RETURNING user_id
