-- GetUsers: the known users among $1.
SELECT user_id, gender, age, occupation, zip_code FROM users WHERE user_id = ANY($1::bigint[])
