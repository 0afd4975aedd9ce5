"""Email that comes back: replies by IMAP or a provider's inbound webhook, matched to the
thread they answer (a handoff, an enrollment) and acted on."""
