"""Domain services: accounts, passwords, sessions, throttling, audit. No HTTP in here."""
