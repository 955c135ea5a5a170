"""Chunked Parquet output: one ``ParquetWriter`` per table, one row group per chunk.

Only one chunk is ever in memory, so a million persons run in bounded memory.
Nothing time- or host-dependent is written, so the same arguments give the same
bytes.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lowvalue.data.schema import ENCOUNTERS, EVENTS, PERSONS

from .builder import ADVERSE_SCHEMA, INTERVENTIONS_SCHEMA

LAYOUT: dict[str, tuple[str, pa.Schema]] = {
    "persons": ("persons.parquet", PERSONS.schema),
    "encounters": ("encounters.parquet", ENCOUNTERS.schema),
    "events": ("events.parquet", EVENTS.schema),
    "interventions": ("truth/interventions.parquet", INTERVENTIONS_SCHEMA),
    "adverse_events": ("truth/adverse_events.parquet", ADVERSE_SCHEMA),
}


class TableWriters:
    """Opens every output file up front (so empty tables still exist) and appends chunks to them."""

    def __init__(self, out: Path):
        (out / "truth").mkdir(parents=True, exist_ok=True)
        self._writers = {
            name: pq.ParquetWriter(out / rel, schema, compression="zstd", compression_level=6)
            for name, (rel, schema) in LAYOUT.items()
        }
        self.rows = {name: 0 for name in LAYOUT}

    def write(self, tables: dict[str, pa.Table]) -> None:
        for name, table in tables.items():
            self._writers[name].write_table(table.cast(LAYOUT[name][1]))
            self.rows[name] += table.num_rows

    def close(self) -> None:
        for w in self._writers.values():
            w.close()

    def __enter__(self) -> "TableWriters":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
