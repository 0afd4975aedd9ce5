"""Email out: one function per email (its context), rendering from email_templates/,
transports, delivery of outbox rows."""
