"""Fixtures for the hostile-input tests (helpers live in hostile.py)."""
