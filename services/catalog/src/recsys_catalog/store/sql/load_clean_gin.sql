-- After a merge: move GIN pending-list entries into the index (else searches scan the list).
SELECT gin_clean_pending_list('movies_title_trgm'::regclass),
       gin_clean_pending_list('movies_genres'::regclass)
