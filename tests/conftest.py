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


SLOW = {"test_spark.py": "spark", "test_spark_scan.py": "spark", "test_crosscheck.py": None, "test_demo.py": None,
        "test_package.py": None}
"""Test files marked ``slow`` (Spark, long property tests, the demo, the wheel in a fresh venv), and their xdist group:
with ``-n 2 --dist loadgroup`` (``make test``) the Spark tests run on one worker, so one JVM starts, not two."""


@pytest.hookimpl(tryfirst=True)  # before xdist's hook, which reads the xdist_group marks to group the tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        name = item.path.name
        if name in SLOW:
            item.add_marker(pytest.mark.slow)
            if SLOW[name]:
                item.add_marker(pytest.mark.xdist_group(SLOW[name]))
