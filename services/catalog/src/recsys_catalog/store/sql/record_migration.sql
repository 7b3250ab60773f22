-- Record migration $1 (version) named $2 as applied.
INSERT INTO catalog_schema_migrations (version, name) VALUES ($1, $2)
