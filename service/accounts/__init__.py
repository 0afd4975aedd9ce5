"""Panel users: accounts, passwords, sessions, reset links."""
