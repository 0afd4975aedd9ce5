"""Infrastructure every part stands on: the database and its tables (models/), the SQL built
once for hot paths (fastsql), the words for states (statuses), settings, the process
runtime, logs, metrics, errors, rate limits, the outbox, signed links, working time
(calendar), email addresses, and the one function for each kind of output (text, CSV,
JSON, redirects, CSP)."""
