"""Spreadsheet exports of the bundled example's scan: Swedish and English CSV, xlsx read back, suppression."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lowvalue.export import export
from lowvalue.export.spreadsheet import frame, table_names, to_csv_bytes
from lowvalue.export.tables import AGGREGATED, NESTED_COUNTS, ScanTables, load, suppress_aggregates
from lowvalue.report.suppress import DEFAULT_MIN_COUNT, Suppressor

SUP = Suppressor(DEFAULT_MIN_COUNT)


@pytest.fixture(scope="module")
def exported(example_results: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each export once per module (suppression of the example's denominators takes about a second)."""
    d = tmp_path_factory.mktemp("exports")
    export(example_results, "csv", d / "sv", locale="sv")
    export(example_results, "csv", d / "a")
    export(example_results, "xlsx", d / "r.xlsx")
    return {"sv": d / "sv", "a": d / "a", "xlsx": d / "r.xlsx"}


@pytest.fixture(scope="module")
def tables(example_results: Path) -> ScanTables:
    return load(example_results, SUP)


def _shared_counts(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    return pd.concat([df[c] for c in cols if c in df], ignore_index=True)


def test_swedish_csv_is_what_swedish_excel_opens(example_results: Path, exported: dict[str, Path]) -> None:
    out = exported["sv"]
    assert {p.name for p in out.iterdir()} >= {"flags.csv", "denominators.csv", "waterfall.csv", "evaluability.csv",
                                         "coverage.csv", "README.txt"}
    raw = (out / "coverage.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark
    header = raw[3:].split(b"\r\n")[0].decode()
    assert header.split(";")[:3] == ["rule_id", "condition", "role"] and "," not in header
    cov = pd.read_csv(out / "coverage.csv", sep=";", decimal=",", encoding="utf-8-sig", dtype={"system_share": str})
    shares = cov.system_share.dropna()
    assert shares.str.contains(",").any() and not shares.str.contains(r"\.").any()  # decimal comma, never a point
    den = pd.read_csv(out / "denominators.csv", sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert "Väster" in "".join(den.unit)  # å, ä, ö survive
    flags = pd.read_csv(out / "flags.csv", sep=";", decimal=",", encoding="utf-8-sig")
    truth = pd.read_parquet(example_results / "flags.parquet")
    assert len(flags) == len(truth) and list(flags.columns) == list(truth.columns)
    assert (flags.cost.fillna(-1).to_numpy() == truth.cost.fillna(-1).to_numpy()).all()
    readme = (out / "README.txt").read_text(encoding="utf-8-sig")
    assert readme.index("ENDAST FÖR ANVÄNDNING INOM REGIONEN") < readme.index("FOR USE INSIDE THE REGION ONLY")


def test_english_csv_is_plain_and_byte_identical(exported: dict[str, Path], tables: ScanTables) -> None:
    a = exported["a"]
    for name in table_names(tables):  # the same scan gives the same bytes (a second, independent load)
        assert (a / f"{name}.csv").read_bytes() == to_csv_bytes(frame(tables, name, SUP), "en"), name
    raw = (a / "coverage.csv").read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and raw.split(b"\r\n")[0].count(b",") >= 5
    assert {p.name for p in a.iterdir()} == {f"{n}.csv" for n in table_names(tables)} | {"README.txt", "export.json"}


def test_xlsx_round_trip(example_results: Path, exported: dict[str, Path], tables: ScanTables) -> None:
    out = exported["xlsx"]
    sheets = pd.read_excel(out, sheet_name=None, engine="openpyxl")
    assert list(sheets)[0] == "README" and set(AGGREGATED) | {"flags"} <= set(sheets)
    readme = pd.read_excel(out, sheet_name="README", header=None, engine="openpyxl")[0].dropna()
    assert readme.str.contains("FOR USE INSIDE THE REGION ONLY").any()
    truth = pd.read_parquet(example_results / "flags.parquet")
    got = sheets["flags"]
    assert list(got.columns) == list(truth.columns) and len(got) == len(truth)
    for col in truth.columns:
        if col == "index_time":
            assert (pd.to_datetime(got[col]).to_numpy() == truth[col].to_numpy()).all()
        elif truth[col].dtype.kind == "f":
            assert ((got[col] - truth[col]).abs().fillna(0) < 1e-9).all(), col
        else:
            assert (got[col].fillna("").astype(str) == truth[col].fillna("").astype(str)).all(), col
    t = tables
    for name in ("denominators", "waterfall"):
        shown = t.shown(name, SUP)
        back = sheets[name]
        assert len(back) == len(shown)
        for c in t.masks[name].columns:
            assert (back[c].astype(str) == shown[c].astype(str)).all(), (name, c)


def test_shared_tables_show_no_small_count_and_no_way_to_one(tables: ScanTables) -> None:
    t = tables
    for name in ("denominators", "waterfall", "coverage"):
        shown = t.shown(name, SUP)
        for c in t.masks[name].columns:
            nums = pd.to_numeric(shown[c][shown[c] != SUP.label], errors="coerce")
            if c != "system_share":
                assert not nums.between(1, SUP.threshold - 1).any(), (name, c)
        assert (shown[t.masks[name].columns] == SUP.label).any().any(), name  # this example has small counts
    den = t.shown("denominators", SUP)
    chain = list(NESTED_COUNTS["denominators"])
    for _, row in den.iterrows():  # nested counts of one row: no small difference between two shown ones
        vals = [row[c] for c in chain if row[c] != SUP.label]
        assert all(not SUP.is_small(a - b) for i, a in enumerate(vals) for b in vals[i + 1:]), row.to_dict()
    wf = t.shown("waterfall", SUP)
    for _, g in wf.groupby("rule_id"):
        vals = [v for v in g.remaining if v != SUP.label]
        assert all(not SUP.is_small(abs(a - b)) for a in vals for b in vals), g.to_dict()
    units = den[den.unit.notna() & den.month.isna()]
    for _, g in units.groupby("rule_id"):  # never exactly one hidden unit of a rule's total (other parts non-zero)
        for c in chain:
            hidden = (g[c] == SUP.label)
            others = g[c][~hidden].astype(float)
            assert hidden.sum() != 1 or not (others > 0).any(), (g.rule_id.iloc[0], c)


def test_suppression_uses_the_suppressor_threshold_and_mark(tables: ScanTables) -> None:
    sup = Suppressor(11)
    wf = tables.tables["waterfall"]
    shown = ScanTables(tables.results, tables.manifest, tables.tables,
                       {"waterfall": suppress_aggregates("waterfall", wf, sup)}, {}).shown("waterfall", sup)
    assert (shown.remaining == sup.label).any()
    assert not pd.to_numeric(shown.remaining[shown.remaining != sup.label]).between(1, 10).any()


def test_small_part_of_a_total_takes_another_part_with_it() -> None:
    df = pd.DataFrame({"rule_id": ["R"] * 4, "unit": [None, "A", "B", "C"], "month": [None] * 4,
                       "candidates": [100, 3, 40, 57], "eligible": [50, 0, 20, 30], "eligible_persons": [50, 0, 20, 30],
                       "flagged": [50, 0, 20, 30], "flagged_specific": [48, 0, 20, 28]})
    m = suppress_aggregates("denominators", df, SUP)
    assert m.candidates.tolist() == [False, True, True, False]  # 3 primary, then the smallest other part (40)
    # 50 − 48 and 30 − 28 would tell a 2: the rule's total and unit C hidden; then C is the one hidden part of the
    # rule's total, so the smallest other non-zero part (B) goes with it
    assert m.flagged_specific.tolist() == [True, False, True, True]


def test_quarantined_rows_are_exported_as_patient_level(example_results: Path, tmp_path: Path) -> None:
    import shutil

    results = tmp_path / "results"
    shutil.copytree(example_results, results)
    q = pd.DataFrame({"source_row": [7, 9], "reason_code": ["missing:person_id", "unknown_person"],
                      "reason": ["no person id", "person not in persons"], "code": ["J06.9", "N39.0"]})
    elsewhere = tmp_path / "q"
    elsewhere.mkdir()
    q.to_parquet(elsewhere / "events.parquet")
    out = tmp_path / "csv"
    export(results, "csv", out, quarantine=elsewhere)
    back = pd.read_csv(out / "quarantine_events.csv")
    assert back.to_dict("list") == q.to_dict("list")
    readme = (out / "README.txt").read_text(encoding="utf-8")
    assert "FOR USE INSIDE THE REGION ONLY: flags, quarantine_events." in readme


def test_overlong_cells_are_cut_for_excel_and_counted() -> None:
    from lowvalue.export.spreadsheet import XLSX_MAX_CELL, _xlsx_value

    n = [0]
    v = _xlsx_value("x" * (XLSX_MAX_CELL + 10), n)
    assert len(v) == XLSX_MAX_CELL and v.endswith("…") and n == [1]
    assert _xlsx_value(float("nan"), n) is None and _xlsx_value(pd.Timestamp("2024-01-02 03:04"), n).hour == 3
