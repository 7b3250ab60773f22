-- Memory for the fresh load's index rebuilds, in this transaction.
SET LOCAL maintenance_work_mem = '256MB'
