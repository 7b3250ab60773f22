-- No server-side statement timeout on this connection (migrations; the client's timeout stays).
SET statement_timeout = 0
