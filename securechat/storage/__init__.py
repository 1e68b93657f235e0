"""Persistence: the Store port and its adapters (SQLite default, PostgreSQL, in-memory)."""
