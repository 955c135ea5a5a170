"""report"""

DEFAULT_MIN_COUNT = 5
"""Counts below this are shown as "<5" in everything shared (here, so the CLI's option reads it without pandas)."""
