-- The ids among $1 that are known users.
SELECT user_id FROM users WHERE user_id = ANY($1::bigint[])
