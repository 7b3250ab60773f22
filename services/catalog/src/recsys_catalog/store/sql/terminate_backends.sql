-- Kill every other connection to the database $1 (fault injection in tests); returns how many.
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid()
