"""Infrastructure every part stands on: the database, settings, the process runtime, logs,
metrics, errors, the outbox, signed links, and the one function for each kind of output
(text, CSV, JSON, redirects)."""
