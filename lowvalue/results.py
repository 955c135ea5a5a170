"""A results folder is one unit: written whole or not at all, and every file in it belongs to the same scan.

A quality unit reads a results folder long after the scan: the risk layer adds
scores, the review app verdicts, the report reads them all. Three things would
make such a folder lie, and each has its guard here:

* **half-written**: ``scan`` writes into a private folder beside ``--out`` and
  puts it in place only when every file is written (:func:`writing`); the
  manifest, written last, says ``"complete": true``;
* **mixed**: two scans into one folder would interleave their files; a lock
  (``.NAME.lock`` beside the folder) lets only one writer in, the other stops;
* **stale**: a file derived from an earlier scan (``flags_scored``, ``excess_risk``,
  ``verdicts``, ``flags_triage``) must not be read as if it described the current
  one. A new scan replaces the whole folder, and every derived table carries the
  stamp of the scan it came from (data fingerprint, rule-set and code-overlay
  digests, :func:`write_derived`); :func:`read_derived` refuses one whose stamp
  differs from the folder's manifest.

Every consumer opens a folder with :func:`read_manifest`, which refuses a folder
without a complete manifest, naming the folder and the fix.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lowvalue.errors import InputError

MANIFEST = "manifest.json"
STAMP_KEY = b"lowvalue.stamp"
RESCAN = "run `lowvalue scan DATA --out RESULTS` again"


def read_manifest(results: Path | str) -> dict[str, Any]:
    """The manifest of a complete results folder; anything else is refused with one line naming the fix."""
    results = Path(results)
    if not results.is_dir():
        raise InputError(str(results), f"is not a results folder: {RESCAN}")
    f = results / MANIFEST
    try:
        manifest = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(str(results), f"has no {MANIFEST}, so it is not a complete scan result: {RESCAN}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(str(f), f"is not readable JSON ({err}): {RESCAN}") from None
    if not isinstance(manifest, dict) or manifest.get("complete") is not True:
        raise InputError(str(results), f"holds an unfinished scan (its manifest does not say complete): {RESCAN}")
    missing = [t for t in manifest.get("tables", []) if not (results / f"{t}.parquet").is_file()]
    if missing:
        raise InputError(str(results), f"is missing {', '.join(m + '.parquet' for m in missing)}: {RESCAN}")
    return manifest


def stamp(manifest: dict[str, Any]) -> dict[str, str]:
    """What identifies the scan a file belongs to: data fingerprint, rule-set and code-overlay digests."""
    rs = manifest.get("rule_set") or {}
    return {"data_fingerprint": str((manifest.get("data") or {}).get("fingerprint", "")),
            "rule_set_digest": str(rs.get("digest", "")),
            "codes_overlay_digest": str((rs.get("codes_overlay") or {}).get("digest", ""))}


def write_table(df: pd.DataFrame | pa.Table, path: Path, *, stamp_of: dict[str, str] | None = None) -> Path:
    """Write Parquet to a temporary name and rename it into place, so a reader never sees half a file.

    Without a stamp the schema metadata is dropped (pandas' would differ between versions: outputs stay
    byte-identical); with one, it is the only metadata.
    """
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    meta = {STAMP_KEY: json.dumps(stamp_of, sort_keys=True).encode()} if stamp_of else None
    with replacing(path) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp, compression="zstd")
    return path


def copy_table(con: Any, select: str, path: Path) -> Path:
    """Write the rows of ``select`` with the engine's own Parquet writer (``COPY … TO``), by rename like
    :func:`write_table`: large tables go from DuckDB to disk without passing through Python."""
    with replacing(path) as tmp:
        con.execute(f"COPY ({select}) TO '{str(tmp).replace(chr(39), chr(39) * 2)}' (FORMAT parquet, COMPRESSION zstd)")
    return path


def write_text(text: str, path: Path) -> Path:
    """Write a text file by rename, like :func:`write_table`."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path``, renamed onto it when the block succeeds and removed in any case; it keeps
    the suffix, for writers that choose the format by it (Parquet, xlsx)."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_derived(df: pd.DataFrame, results: Path | str, name: str) -> Path:
    """A table derived from a results folder, written into it with the folder's stamp (see :func:`read_derived`)."""
    results = Path(results)
    return write_table(df, results / name, stamp_of=stamp(read_manifest(results)))


def read_derived(path: Path | str, results: Path | str, *, made_by: str) -> pd.DataFrame:
    """Read a derived table, refusing one made from another scan than the one in ``results``.

    ``made_by`` is the command that makes the file, for the fix in the message.
    """
    path = Path(path)
    want = stamp(read_manifest(results))
    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException) as err:
        raise InputError(str(path), f"is not a readable Parquet file ({err}); run `{made_by}` again") from None
    got = json.loads(meta[STAMP_KEY]) if STAMP_KEY in meta else None
    if got is None:
        raise InputError(str(path), f"carries no scan stamp, so it cannot be matched to the scan in {results}; "
                                    f"run `{made_by}` again")
    if got != want:
        differ = ", ".join(k.replace("_", " ") for k in want if got.get(k) != want[k])
        raise InputError(str(path), f"was made from another scan than the one in {results} ({differ} differ); "
                                    f"run `{made_by}` again")
    return pd.read_parquet(path)


def _swap_in(tmp: Path, out: Path) -> None:
    """Put ``tmp`` where ``out`` is: the old folder is moved aside first, then removed."""
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def _replaceable(out: Path) -> None:
    """Refuse to replace a folder that is not a lowvalue results folder: it may hold someone's files."""
    if out.exists() and not out.is_dir():
        raise InputError(str(out), "exists and is not a folder; give a new or empty folder for the results")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise InputError(str(out), "is not empty and is not a lowvalue results folder; give a new or empty folder "
                                   "(a scan replaces its whole --out folder)")


def _lock(fh: Any) -> None:
    """Take the writer's lock on an open file without waiting (``OSError`` when another process holds it); released
    when the file is closed. ``flock`` on POSIX, ``msvcrt.locking`` on Windows."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        return
    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)


@contextmanager
def writing(out: Path | str) -> Iterator[Path]:
    """A fresh private folder to write a scan into; on success it replaces ``out`` whole, on failure it is removed.

    Only one writer at a time (a lock beside ``out``); leftovers of a killed writer are removed when the next one
    starts. Derived files of the earlier scan go with the folder they were in.
    """
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    _replaceable(out)
    lock = open(out.with_name(f".{out.name}.lock"), "a+")  # noqa: SIM115 - held until the end of the block
    try:
        try:
            _lock(lock)
        except OSError:
            raise InputError(str(out), "another scan is writing this results folder now; wait for it, or give "
                                       "another --out") from None
        for stale in out.parent.glob(f".{out.name}.partial-*"):  # a killed writer's folder: we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
        tmp.mkdir()
        try:
            yield tmp
            _swap_in(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        lock.close()
