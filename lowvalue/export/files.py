"""Export files written whole: into a private name beside the target, renamed into place when complete.

An export folder carries ``export.json`` (what it holds and the scan it came from); re-exporting into it replaces
it, but a folder without that file that is not empty is somebody else's and is refused.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lowvalue.errors import InputError
from lowvalue.results import replacing

MARKER = "export.json"


def check_folder(out: Path | str) -> Path:
    """``out`` as an absolute path if an export may replace it; else one line (before any work is done)."""
    out = Path(out).absolute()
    if out.exists() and not out.is_dir():
        raise InputError(str(out), "exists and is not a folder; give a new or empty folder for the export")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise InputError(str(out), "is not empty and is not a lowvalue export folder; give a new or empty folder "
                                   "(an export replaces its whole --out folder)")
    return out


@contextmanager
def folder(out: Path | str) -> Iterator[Path]:
    """A fresh private folder to write an export into; on success it replaces ``out`` whole, on failure it goes."""
    out = check_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def file(out: Path | str) -> Iterator[Path]:
    """A temporary name beside ``out`` (same suffix, so libraries that look at it are content), renamed onto it."""
    out = Path(out).absolute()
    if out.is_dir():
        raise InputError(str(out), "is a folder; give a file name for this export format")
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as tmp:
        yield tmp


def write_marker(folder: Path, info: dict[str, Any]) -> Path:
    path = folder / MARKER
    path.write_text(json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
