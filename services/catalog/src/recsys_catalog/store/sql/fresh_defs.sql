-- Fast path into an EMPTY catalog (first load, or --replace): drop the secondary indexes and
-- the foreign keys, insert in primary-key order (movies with their aggregates), then rebuild the
-- indexes by sorting and re-add the foreign keys (validated by one join each instead of lookups
-- per row). All inside the load's transaction: a failure restores the tables as they were. The
-- definitions dropped and re-created are read from the migrated schema itself (this statement),
-- so the migrations are their one home (a test compares the schema after a fast load with the
-- migrated one).
--
-- The secondary indexes of movies and ratings and the foreign keys of ratings, as the migrations
-- made them: (kind, name, definition), kind "index" (pg_get_indexdef, a CREATE INDEX statement) or
-- "fkey" (pg_get_constraintdef, the ADD CONSTRAINT clause). Primary keys and unique constraints
-- stay (the loads' ON CONFLICT needs them).
SELECT 'index' AS kind, i.relname AS name, pg_get_indexdef(x.indexrelid) AS def
FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid
WHERE x.indrelid IN ('movies'::regclass, 'ratings'::regclass) AND NOT x.indisprimary AND NOT x.indisunique
UNION ALL
SELECT 'fkey', conname, pg_get_constraintdef(oid)
FROM pg_constraint WHERE conrelid = 'ratings'::regclass AND contype = 'f'
ORDER BY 1, 2
