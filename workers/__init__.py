"""RQ jobs and periodic sweeps. Jobs take ids, re-read the database, and do nothing when
the world has moved on."""
