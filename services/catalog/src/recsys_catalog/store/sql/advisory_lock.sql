-- Take the "migrating or bulk-loading the catalog" lock $1 for the session (waits for a holder).
SELECT pg_advisory_lock($1)
