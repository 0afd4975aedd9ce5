"""Handing an MQL to sales: promotion use cases, assignment, reps and teams, the SLA clock and
its sweep (reminders, escalations, reassignment)."""
