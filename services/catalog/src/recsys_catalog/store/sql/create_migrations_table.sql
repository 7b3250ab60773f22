-- The table recording the migrations applied (made before the first one runs).
CREATE TABLE IF NOT EXISTS catalog_schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
