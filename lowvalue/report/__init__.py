"""report"""

DEFAULT_MIN_COUNT = 5
"""Counts below this are suppressed (shown as "–") in everything shared (here, so the CLI's option reads it without pandas)."""
