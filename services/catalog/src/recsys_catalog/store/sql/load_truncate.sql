-- --replace: empty the catalog inside the load's transaction.
TRUNCATE ratings, users, movies, genres
