-- Describe: the number of movies, users and ratings.
SELECT (SELECT count(*) FROM movies) AS movies,
       (SELECT count(*) FROM users) AS users,
       (SELECT count(*) FROM ratings) AS ratings
