"""Content the team edits in the panel: nurture sequences, prospect email templates and the
reject reasons. Stored in the database as versions (who, when, what changed; a change is a
new version), read at each use so an edit takes effect without a restart, and checked when
saved so a bad one never reaches a send. config.toml and email_templates/nurture/ seed the
first versions (seed.py)."""
