"""Durations and time windows relative to the index event.

A window is written the way a clinician reads it: ``"[-42d, 0d]"`` is "from 42
days before to the day of the index", both ends included; a round bracket
excludes that end, as in interval notation: ``"[-30d, 0d)"``.

Windows in days compare *calendar dates* (the event's date minus the index's
date), because "within 3 days" in a guideline means days on the calendar, not
72 hours. Windows in hours compare exact timestamps, for in-hospital rules such
as "the last haemoglobin in the 24 hours before a transfusion".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Unit = Literal["d", "h"]

_DURATION = re.compile(r"^\s*([+-]?\d+)\s*([dh])\s*$")
_WINDOW = re.compile(r"^\s*([\[(])\s*([^,]+?)\s*,\s*([^,\])]+?)\s*([\])])\s*$")


@dataclass(frozen=True)
class Duration:
    """A signed whole number of days or hours, e.g. ``-42d`` or ``24h``."""

    amount: int
    unit: Unit

    @classmethod
    def parse(cls, text: str | int) -> "Duration":
        """Parse ``"42d"``, ``"-24h"``; a bare integer means days.

        >>> Duration.parse("-42d")
        Duration(amount=-42, unit='d')
        """
        if isinstance(text, int) and not isinstance(text, bool):
            return cls(text, "d")
        m = _DURATION.match(str(text))
        if not m:
            raise ValueError(f"must be a duration like '42d' or '-24h'. Got {text!r} instead.")
        return cls(int(m.group(1)), m.group(2))  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


@dataclass(frozen=True)
class Window:
    """An interval of offsets from the index: ``[start, end]`` with open or closed ends."""

    start: int
    end: int
    unit: Unit = "d"
    start_inclusive: bool = True
    end_inclusive: bool = True

    @classmethod
    def parse(cls, text: str) -> "Window":
        """Parse ``"[-42d, 0d]"`` or ``"(-24h, 0h]"``.

        >>> Window.parse("[-42d, 0d)")
        Window(start=-42, end=0, unit='d', start_inclusive=True, end_inclusive=False)
        """
        if isinstance(text, Window):
            return text
        m = _WINDOW.match(str(text))
        if not m:
            raise ValueError(f"must be a window like '[-42d, 0d]'. Got {text!r} instead.")
        lo, hi = Duration.parse(m.group(2)), Duration.parse(m.group(3))
        if lo.unit != hi.unit:
            raise ValueError(f"both ends must use the same unit (d or h). Got {text!r} instead.")
        w = cls(lo.amount, hi.amount, lo.unit, m.group(1) == "[", m.group(4) == "]")
        if w.is_empty():
            raise ValueError(f"is empty: its start is after its end. Got {text!r} instead.")
        return w

    def is_empty(self) -> bool:
        lo, hi = self.int_bounds()
        return lo > hi if self.unit == "d" else (self.start > self.end or (
            self.start == self.end and not (self.start_inclusive and self.end_inclusive)))

    def int_bounds(self) -> tuple[int, int]:
        """Inclusive integer bounds; exact for day windows (offsets are whole days)."""
        lo = self.start if self.start_inclusive else self.start + 1
        hi = self.end if self.end_inclusive else self.end - 1
        return lo, hi

    def contains(self, offset: float) -> bool:
        """Whether an offset (days for ``d``, hours for ``h``) lies in the window."""
        above = offset >= self.start if self.start_inclusive else offset > self.start
        below = offset <= self.end if self.end_inclusive else offset < self.end
        return above and below

    def __str__(self) -> str:
        return f"{'[' if self.start_inclusive else '('}{self.start}{self.unit}, {self.end}{self.unit}{']' if self.end_inclusive else ')'}"
