-- The load's users as COPYed, dropped at commit.
CREATE TEMP TABLE load_users (
    user_id bigint, gender text, age integer, occupation text, zip_code text
) ON COMMIT DROP
