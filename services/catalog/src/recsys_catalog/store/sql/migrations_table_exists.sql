-- Whether the migrations have ever run (the table that records them exists).
SELECT to_regclass('catalog_schema_migrations') IS NOT NULL
