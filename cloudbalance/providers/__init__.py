"""Providers built into the core: FOCUS files and the bundled demo data."""
