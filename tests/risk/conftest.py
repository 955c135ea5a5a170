"""One synthetic region per test session, scanned once: the risk tests share it.

20 000 persons is the largest region whose generate + scan fits in about 20 s
on two cores, and it gives a few hundred low-value interventions per planted
pattern, enough for the excess-risk coverage test on its fixed seed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lowvalue

PERSONS, SEED = 20000, 1


@pytest.fixture(scope="session")
def region(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lowvalue.data.synth import generate

    out = tmp_path_factory.mktemp("risk_region") / "data"
    generate(persons=PERSONS, seed=SEED, out=out)
    return out


@pytest.fixture(scope="session")
def results(region: Path) -> Path:
    out = region.parent / "results"
    lowvalue.scan(region, codes=region / "region-codes").write(out)
    return out


@pytest.fixture(scope="session")
def trained(results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lowvalue.risk.train import train

    out = tmp_path_factory.mktemp("models") / "m"
    train(results, out, seed=1, n_boot=30)
    return out
