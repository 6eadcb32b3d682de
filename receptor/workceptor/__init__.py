"""Workceptor: units of work, local and remote (work.md)."""
