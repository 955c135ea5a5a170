"""Every exception lowvalue raises on purpose, in one place.

The CLI turns a :class:`LowvalueError` into one line on stderr and exit code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class LowvalueError(Exception):
    """Base class: an error the user can fix, reported as one line."""

    exit_code = 2

    def one_line(self) -> str:
        return str(self)


class InputError(LowvalueError):
    """An input file cannot be used at all (missing, unreadable, lacking a required column).

    The message names the file and, where they apply, the row and the column, so
    a data engineer can go straight to the cause.
    """

    def __init__(self, file: str, message: str, *, row: int | None = None, column: str | None = None):
        self.file, self.message, self.row, self.column = str(file), message, row, column
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = self.file + (f":{self.row}" if self.row is not None else "")
        col = f" column '{self.column}':" if self.column else ""
        return f"{where}:{col} {self.message}"


class StrictModeError(LowvalueError):
    """``--strict`` was given and at least one row was quarantined."""


class RuleError(LowvalueError):
    """A rule or code-set file is invalid. Carries file, line and column when known."""

    def __init__(self, file: str, message: str, *, line: int | None = None, column: int | None = None):
        self.file, self.message, self.line, self.column = str(file), message, line, column
        super().__init__(self.one_line())

    def one_line(self) -> str:
        loc = self.file
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        return f"{loc}: {self.message}"
