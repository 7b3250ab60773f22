-- Take the "migrating or bulk-loading the catalog" lock $1 until the transaction ends.
SELECT pg_advisory_xact_lock($1)
