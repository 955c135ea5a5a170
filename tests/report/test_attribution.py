"""Attribution to the performing or the listing unit (issue 17, item 2): scans carry ``persons.listing_unit`` into
candidates and flags, and ``report --attribution listing`` counts each intervention to the person's listing unit in
the funnels, unit p-charts and the decision table; a results folder without the column says so in one line."""

from __future__ import annotations

from pathlib import Path

import html
import pandas as pd
import pytest
from click.testing import CliRunner

from lowvalue.cli import main
from lowvalue.errors import InputError
from lowvalue.report import aggregate
from lowvalue.report.suppress import Suppressor
from lowvalue.shipped import shipped

from .conftest import write_tiny


def test_scans_carry_the_persons_listing_unit(example_results: Path) -> None:
    cand = pd.read_parquet(example_results / "candidates.parquet", columns=["person_id", "unit", "listing_unit"])
    flags = pd.read_parquet(example_results / "flags.parquet", columns=["person_id", "listing_unit"])
    persons = pd.read_parquet(shipped("examples/synthetic_data") / "persons.parquet",
                              columns=["person_id", "listing_unit"])
    assert cand.listing_unit.notna().any() and flags.listing_unit.notna().any()
    # one listing unit per person, and it is not simply the unit that performed
    assert (cand.groupby("person_id").listing_unit.nunique(dropna=False) == 1).all()
    assert (cand.unit != cand.listing_unit).any()
    want = persons.astype({"person_id": str}).set_index("person_id").listing_unit
    got = cand.drop_duplicates("person_id").set_index("person_id").listing_unit
    assert (got == want.reindex(got.index)).all()


def test_listing_attribution_drives_units_funnels_and_unit_trends(example_results: Path) -> None:
    perf = aggregate.load(example_results)
    lst = aggregate.load(example_results, attribution="listing")
    cand = pd.read_parquet(example_results / "candidates.parquet")
    listing_units = set(cand.listing_unit.dropna())
    units = set(lst.units.unit.dropna())
    assert units and units <= listing_units and units != set(perf.units.unit.dropna())
    rule = lst.units.dropna(subset=["unit"]).sort_values("eligible").rule_id.iloc[-1]
    # the rule's totals do not depend on the attribution; its units do
    assert (perf.units[perf.units.unit.isna()].set_index("rule_id").eligible
            == lst.units[lst.units.unit.isna()].set_index("rule_id").eligible).all()
    uv = aggregate.unit_variation(lst, Suppressor(), rule)
    assert set(uv.funnel.units.unit) <= listing_units
    one = lst.units[(lst.units.rule_id == rule) & lst.units.unit.notna()].sort_values("eligible").iloc[-1]
    t, _ = aggregate.trend(lst, Suppressor(), rule, one.unit)
    assert t.eligible.sum() == one.eligible  # the unit's p-chart counts the same candidates as its funnel point


def test_the_report_states_the_attribution(example_results: Path, tmp_path: Path) -> None:
    for lang, attribution, words in (("en", "listing", "attributed to the person's listing unit"),
                                     ("sv", "listing", "räknas till personens listningsenhet"),
                                     ("en", "performing", "attributed to the unit of its index encounter")):
        out = tmp_path / f"{lang}-{attribution}.html"
        res = CliRunner().invoke(main, ["report", str(example_results), "--lang", lang, "--attribution", attribution,
                                        "--rule", "LV-ABX-003", "--top", "1", "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert words in html.unescape(out.read_text(encoding="utf-8"))


def test_results_without_the_listing_unit_say_scan_again(tmp_path: Path) -> None:
    tiny = write_tiny(tmp_path / "tiny")  # candidates as scans wrote them before they carried the listing unit
    res = CliRunner().invoke(main, ["report", str(tiny), "--attribution", "listing", "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "listing unit not in these results: scan again" in lines[0], res.output
    assert "Traceback" not in res.output
    ok = CliRunner().invoke(main, ["report", str(tiny), "--out", str(tmp_path / "p.html")])
    assert ok.exit_code == 0, ok.output  # the default (performing) needs no listing unit


def test_an_extract_without_listing_units_is_refused_for_listing(tmp_path: Path) -> None:
    tiny = write_tiny(tmp_path / "tiny")
    cand = pd.read_parquet(tiny / "candidates.parquet").assign(listing_unit=None)
    cand["listing_unit"] = cand.listing_unit.astype("string")
    cand.to_parquet(tiny / "candidates.parquet", index=False)
    with pytest.raises(InputError, match="no candidate has a listing unit"):
        aggregate.load(tiny, attribution="listing")


def test_pseudonymised_results_keep_the_listing_unit(tmp_path: Path) -> None:
    import lowvalue

    result = lowvalue.scan(shipped("examples/synthetic_data"), only=["LV-ABX-003"])
    result.pseudonymised(b"k" * 40).write(tmp_path / "pseudo")
    result.write(tmp_path / "plain")
    cols = ["rule_id", "index_time", "unit", "listing_unit"]
    plain, pseudo = (pd.read_parquet(tmp_path / p / "candidates.parquet")
                     for p in ("plain", "pseudo"))  # a unit is not an identifier: the same units, ids hashed
    assert set(pseudo.person_id).isdisjoint(plain.person_id)
    key = ["rule_id", "index_time", "unit", "listing_unit"]
    assert (plain[cols].sort_values(key).reset_index(drop=True)
            .equals(pseudo[cols].sort_values(key).reset_index(drop=True)))
    assert pseudo.listing_unit.notna().any()
