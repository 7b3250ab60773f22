-- Plan this transaction's statements for their actual parameters (see popular_scored in
-- queries.py: a generic plan misjudges the arrays).
SET LOCAL plan_cache_mode = force_custom_plan
