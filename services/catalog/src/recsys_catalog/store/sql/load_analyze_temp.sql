-- Statistics of the COPYed rows, so the merges below plan for their size.
ANALYZE load_movies, load_users, load_ratings
