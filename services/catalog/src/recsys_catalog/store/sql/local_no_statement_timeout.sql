-- No server-side statement timeout in this transaction (the bulk load).
SET LOCAL statement_timeout = 0
