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


SLOW = ("test_spark.py", "test_spark_scan.py", "test_crosscheck.py", "test_demo.py", "test_package.py")
"""Test files marked ``slow`` (Spark, long property tests, the demo, the wheel in a fresh venv): ``make test-fast``
leaves them out. ``make test`` runs every file on 2 workers with ``--dist loadfile`` (a file's tests, and its module
fixtures such as a Spark session, stay on one worker). ``--dist loadgroup`` with ``xdist_group`` marks would keep both
Spark files on one worker, but pytest-xdist 3.8 cannot group under pytest 9 (it renames ``item._nodeid``, which
pytest 9 no longer reads)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW:
            item.add_marker(pytest.mark.slow)
