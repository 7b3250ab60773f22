-- Both paths: upsert the loaded users; unchanged rows are not rewritten.
INSERT INTO users AS u (user_id, gender, age, occupation, zip_code)
SELECT DISTINCT ON (user_id) user_id, gender, age, occupation, zip_code
FROM load_users ORDER BY user_id
ON CONFLICT (user_id) DO UPDATE
    SET gender = EXCLUDED.gender, age = EXCLUDED.age, occupation = EXCLUDED.occupation,
        zip_code = EXCLUDED.zip_code
    WHERE (u.gender, u.age, u.occupation, u.zip_code)
          IS DISTINCT FROM (EXCLUDED.gender, EXCLUDED.age, EXCLUDED.occupation, EXCLUDED.zip_code)
