-- After a load: fresh statistics of the catalog's tables.
ANALYZE movies, users, ratings
