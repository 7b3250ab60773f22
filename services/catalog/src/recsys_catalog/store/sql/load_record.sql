-- Record the load: $1 name, $2 sha256, $3 movies, $4 users, $5 ratings, $6 replaced.
INSERT INTO dataset_loads (name, sha256, movies, users, ratings, replaced)
VALUES ($1, $2, $3, $4, $5, $6)
