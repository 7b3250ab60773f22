-- Describe: the last data set loaded.
SELECT name, sha256, loaded_at FROM dataset_loads ORDER BY load_id DESC LIMIT 1
