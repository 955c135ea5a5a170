"""Pseudonymised outputs: no original id survives, pseudonyms are stable per key, and a key is required."""

from __future__ import annotations

import pandas as pd
from click.testing import CliRunner

from lowvalue.cli import main
from lowvalue.privacy import KEY_ENV
from pathlib import Path

REGION = Path(__file__).resolve().parents[2] / "examples" / "synthetic_data"
KEY = "a-secret-key-of-enough-length"


def _scan(tmp_path: Path, name: str, key: str | None, *extra: str):
    env = {KEY_ENV: key} if key is not None else {}
    if "--pseudonymise" in extra:  # rejected rows keep raw ids: they go to a folder outside the results
        extra = (*extra, "--quarantine", str(tmp_path / f"{name}-quarantine"))
    return CliRunner(env=env).invoke(main, ["scan", str(REGION), "--out", str(tmp_path / name), "--only", "LV-RX-022",
                                            *extra])


def test_pseudonymised_scan_has_no_original_ids(tmp_path):
    plain = _scan(tmp_path, "plain", None)
    assert plain.exit_code == 0, plain.output
    res = _scan(tmp_path, "ps", KEY, "--pseudonymise")
    assert res.exit_code == 0, res.output
    orig = pd.read_parquet(tmp_path / "plain" / "flags.parquet")
    ps = pd.read_parquet(tmp_path / "ps" / "flags.parquet")
    assert len(orig) == len(ps) > 0
    originals = set(orig.person_id) | set(orig.encounter_id.dropna()) | set(orig.flag_id)
    for table in (tmp_path / "ps").glob("*.parquet"):
        df = pd.read_parquet(table)
        for col in df.columns[df.dtypes == object]:
            leaked = originals & set(df[col].dropna().astype(str))
            assert not leaked, f"{table.name}.{col} leaks original ids"
    assert ps.person_id.str.startswith("ps_").all() and ps.flag_id.str.startswith("ps_").all()
    again = _scan(tmp_path, "ps2", KEY, "--pseudonymise")
    assert again.exit_code == 0
    assert (pd.read_parquet(tmp_path / "ps2" / "flags.parquet").person_id == ps.person_id).all()


def test_pseudonymisation_needs_a_key(tmp_path):
    res = _scan(tmp_path, "nokey", "short", "--pseudonymise")
    assert res.exit_code == 2 and "LOWVALUE_PSEUDONYM_KEY" in res.output and "Traceback" not in res.output


def test_a_scan_without_features_can_be_pseudonymised():
    """The API's ``scan(..., features=False)`` has no features table in the engine: its pseudonymised copy still
    builds (it used to pass the empty frame to the constructor) and reads the features as empty."""
    from lowvalue.data.extract import open_extract
    from lowvalue.engine.scan import scan
    from lowvalue.rules.library import load_library

    rs = load_library()
    with open_extract(REGION) as ext:
        res = scan(ext, rs, only=["LV-RX-022"], features=False)
        ps = res.pseudonymised(KEY.encode())
        assert ps.features.empty and len(ps.flags) == len(res.flags) > 0
        assert ps.flags.person_id.str.startswith("ps_").all()
