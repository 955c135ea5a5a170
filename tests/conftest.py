"""Fixtures shared across test packages: the bundled example region, scanned once per session.

Tests that write into a results folder copy it first; this one is read-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lowvalue

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "synthetic_data"


@pytest.fixture(scope="session")
def example_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("example") / "results"
    lowvalue.scan(EXAMPLE, codes=EXAMPLE / "region-codes").write(out)
    return out
