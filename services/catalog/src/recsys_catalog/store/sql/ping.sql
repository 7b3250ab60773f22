-- Health: the connection answers.
SELECT 1
