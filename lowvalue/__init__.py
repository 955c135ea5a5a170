"""lowvalue: find low-value care in encounter extracts and link it to adverse-event risk."""

from __future__ import annotations

__version__ = "0.1.0"
