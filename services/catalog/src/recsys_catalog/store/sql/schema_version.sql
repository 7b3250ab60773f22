-- The schema version: the newest migration applied (0: none).
SELECT coalesce(max(version), 0) FROM catalog_schema_migrations
