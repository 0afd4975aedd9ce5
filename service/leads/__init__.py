"""The lead itself: scoring, versioned MQL/SQL definitions, merging duplicates, data-subject
requests (GDPR)."""
