"""Private temporary folders for working copies of patient data (a transcoded CSV, a converted extract).

Such a copy holds the same identifiers as the source, so it must not outlive the command that made it. A folder
removed in a ``finally`` is gone after an error, but not after a kill; so every folder lives under one directory
only this user can read (``$TMPDIR/lowvalue-UID``, mode 0700), its name carries the process id, and each new
command first removes the folders of processes that no longer run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def root() -> Path:
    import getpass

    r = Path(tempfile.gettempdir()) / f"lowvalue-{os.getuid() if hasattr(os, 'getuid') else getpass.getuser()}"
    r.mkdir(mode=0o700, exist_ok=True)
    os.chmod(r, 0o700)
    return r


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would end the process there: a killed command's folder waits in %TEMP%
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale() -> int:
    """Remove the working folders of processes that are gone; returns how many."""
    n = 0
    for d in root().iterdir():
        parts = d.name.split(".")
        if len(parts) >= 3 and parts[1].isdigit() and not _alive(int(parts[1])):
            shutil.rmtree(d, ignore_errors=True)
            n += 1
    return n


def private_dir(purpose: str) -> Path:
    """A new private folder (``PURPOSE.PID.RANDOM``); the caller removes it, or the next command does."""
    clean_stale()
    return Path(tempfile.mkdtemp(prefix=f"{purpose.replace('.', '_')}.{os.getpid()}.", dir=root()))


@contextmanager
def private_workdir(purpose: str) -> Iterator[Path]:
    """A private folder removed when the block ends, whatever the outcome."""
    d = private_dir(purpose)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
