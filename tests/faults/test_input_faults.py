"""Input faults on the reading side (issue 12, parts 3 and 5): each test fails on the reader before the fix.

Every extract here is a tiny canonical CSV (or Parquet) folder written into ``tmp_path``. Whatever the fault, the
contract is the same: bad input is one clear line and exit 2, or a row in quarantine with a reason code, and for
every table ``read == accepted + quarantined``.
"""

from __future__ import annotations

import json

import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from extract_fixtures import EVENTS, PERSONS, write_extract  # noqa: E402

from lowvalue.cli import main  # noqa: E402
from lowvalue.data.extract import open_extract  # noqa: E402
from lowvalue.data.schema import EVENTS as EVENTS_TABLE  # noqa: E402
from lowvalue.data.validation import REASON_CODES  # noqa: E402
from lowvalue.errors import InputError  # noqa: E402


def _reconciles(ex) -> None:
    for c in ex.counts.values():
        assert c.read == c.accepted + c.quarantined, c


def _quarantine(ex, table: str) -> pd.DataFrame:
    return ex.to_pandas(f"quarantine_{table}")


def _validate(*args):
    return CliRunner().invoke(main, ["validate", *map(str, args)])


def _one_line_error(res, *fragments) -> str:
    assert res.exit_code == 2, res.output
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output and "Traceback" not in res.stderr
    for f in fragments:
        assert f in err[0], err[0]
    return err[0]


def _lab(value: str, code: str = "NPU08669", when: str = "2025-03-02 10:05") -> str:
    return f"P2,E2,{when},lab,NPU,{code},{value},,,"


# --------------------------------------------------------------------------- 1. qualitative and censored values


QUALITATIVE = ["neg", "pos", "positiv", "negativ", "NEG", "Ej påvisad"]
CENSORED = [("<5", "<"), (">90", ">"), ('"< 0,5"', "<"), ("<=0.1", "<")]


def test_qualitative_and_censored_values_keep_their_event(tmp_path):
    rows = [_lab(v, code=f"Q{i}") for i, v in enumerate(QUALITATIVE)]
    rows += [_lab(v, code=f"C{i}") for i, (v, _) in enumerate(CENSORED)]
    d = write_extract(tmp_path / "x", events=[*EVENTS, *rows])
    ex = open_extract(d)
    _reconciles(ex)
    assert ex.counts["events"].quarantined == 0, ex.counts["events"].reasons
    ev = ex.to_pandas("events").set_index("code")
    for i, text in enumerate(QUALITATIVE):
        assert pd.isna(ev.loc[f"Q{i}", "value"]) and ev.loc[f"Q{i}", "value_text"] == text
        assert pd.isna(ev.loc[f"Q{i}", "value_censor"])
    for i, (text, sign) in enumerate(CENSORED):
        # the rule: a censored value keeps its text and its direction; the number itself is NULL, so no rule
        # compares "<5" as if it were exactly 5
        assert pd.isna(ev.loc[f"C{i}", "value"])
        assert ev.loc[f"C{i}", "value_text"] == text.strip('"') and ev.loc[f"C{i}", "value_censor"] == sign
    # a plain number has no text; a garbled number with digits is still non-numeric
    assert ev.loc["NPU08669", "value"] == 5.2 and pd.isna(ev.loc["NPU08669", "value_text"])


def test_garbled_number_is_still_quarantined(tmp_path):
    d = write_extract(tmp_path / "x", events=[*EVENTS, _lab("12..5")])
    ex = open_extract(d)
    _reconciles(ex)
    assert ex.counts["events"].reasons == {"non_numeric:value": 1}


def test_new_event_columns_are_optional_in_the_schema_and_part_of_the_key():
    names = EVENTS_TABLE.schema.names
    assert {"value_text", "value_censor"} <= set(names) and not {"value_text", "value_censor"} & set(EVENTS_TABLE.required)
    assert names.index("present_on_admission") < names.index("value_text")
    assert {"value_text", "value_censor"} <= set(EVENTS_TABLE.key)


def test_events_differing_only_in_qualitative_text_are_not_duplicates(tmp_path):
    d = write_extract(tmp_path / "x", events=[*EVENTS, _lab("neg", code="X"), _lab("pos", code="X")])
    ex = open_extract(d)
    assert ex.counts["events"].quarantined == 0


def _strep_extract(folder: Path) -> Path:
    """Two adults with tonsillitis and penicillin V; T1 had a rapid strep A test valued 'neg', T2 none."""
    persons = ["T1,1990-01-01,F,,,", "T2,1990-01-01,M,,,"]
    encounters = ["V1,T1,2025-03-01 09:00,2025-03-01 09:20,primary_care,VC,",
                  "V2,T2,2025-03-01 09:00,2025-03-01 09:20,primary_care,VC,"]
    events = []
    for p, v in (("T1", "V1"), ("T2", "V2")):
        events += [f"{p},{v},2025-03-01 09:05,diagnosis,ICD-10-SE,J03.9,,,,",
                   f"{p},{v},2025-03-01 09:15,medication,ATC,J01CE02,,,10,"]
    events.append("T1,V1,2025-03-01 09:10,lab,LOINC,78012-2,neg,,,")
    return write_extract(folder, persons=persons, encounters=encounters, events=events)


def test_strep_test_valued_neg_still_excludes_lv_abx_006(tmp_path):
    import lowvalue

    d = _strep_extract(tmp_path / "x")
    result = lowvalue.scan(d, only=["LV-ABX-006"], features=False)
    flagged = set(result.flags.person_id)
    assert "T2" in flagged  # the untested patient is flagged: the rule runs on this extract
    assert "T1" not in flagged  # the test valued 'neg' is an event; "a test was done" sees it
    assert result.manifest["data"]["counts"]["events"]["quarantined"] == 0


# --------------------------------------------------------------------------- 2. plausible dates


def test_implausible_dates_are_quarantined(tmp_path):
    persons = [*PERSONS, "P3,1850-01-01,F,,,", "P4,1950-01-01,M,,,2999-01-01"]
    encounters = ["E1,P1,2025-03-01 09:00,2025-03-01 09:30,primary_care,VC,",
                  "E2,P2,2025-03-02 10:00,,outpatient,Ortopedi,",
                  "E3,P1,1899-12-31 10:00,,outpatient,Ortopedi,",
                  "E4,P1,2025-03-03 10:00,2999-03-03 10:00,inpatient,Med,"]
    events = [*EVENTS, "P1,,2100-01-01,observation,LOCAL,BMI,27.1,kg/m2,,"]
    d = write_extract(tmp_path / "x", persons=persons, encounters=encounters, events=events)
    ex = open_extract(d)
    _reconciles(ex)
    assert ex.counts["persons"].reasons == {"implausible_date:birth_date": 1, "implausible_date:death_date": 1}
    # (1899 is also before P1's birth: both reasons are given)
    assert ex.counts["encounters"].reasons == {"implausible_date:start_time": 1, "before_birth": 1,
                                               "implausible_date:end_time": 1}
    assert ex.counts["events"].reasons == {"implausible_date:time": 1}
    q = _quarantine(ex, "persons")
    assert "1850-01-01" in q.loc[q.person_id == "P3", "reason"].iloc[0]
    assert "implausible_date:<col>" in REASON_CODES
    import lowvalue.data.validation as v
    assert "``implausible_date:<col>``" in v.__doc__


def test_declared_extract_end_bounds_dates(tmp_path):
    events = [*EVENTS, "P1,,2025-09-01,observation,LOCAL,BMI,27.1,kg/m2,,"]
    d = write_extract(tmp_path / "x", events=events)
    assert open_extract(d).counts["events"].quarantined == 0  # optional: without it only today bounds
    ex = open_extract(d, extract_end=date(2025, 6, 30))
    _reconciles(ex)
    assert ex.counts["events"].reasons == {"implausible_date:time": 1}


# --------------------------------------------------------------------------- 3. zone-aware and naive timestamps


def test_mixed_zone_aware_and_naive_times_warn(tmp_path):
    events = [*EVENTS, "P1,E1,2025-03-01T09:20:00+01:00,diagnosis,ICD-10-SE,J02.9,,,,"]
    d = write_extract(tmp_path / "x", events=events)
    ex = open_extract(d)
    _reconciles(ex)
    assert len(ex.warnings) == 1
    w = ex.warnings[0]
    assert w.startswith("events:") and "1 with a UTC offset" in w and "4 without" in w
    assert w in ex.summary()
    # the rule: an offset is converted to UTC; a value without one is taken as it is
    t = ex.to_pandas("events").set_index("code").loc["J02.9", "time"]
    assert t == pd.Timestamp("2025-03-01 08:20")
    res = _validate(d)
    assert res.exit_code == 0 and "with a UTC offset" in res.stdout


def test_mixed_times_warning_reaches_the_scan_manifest(tmp_path):
    import lowvalue

    events = [*EVENTS, "P1,E1,2025-03-01T09:20:00Z,diagnosis,ICD-10-SE,J02.9,,,,"]
    result = lowvalue.scan(write_extract(tmp_path / "x", events=events), only=["LV-ABX-006"], features=False)
    assert len(result.manifest["data"]["warnings"]) == 1 and "events:" in result.manifest["data"]["warnings"][0]


def test_only_aware_or_only_naive_times_do_not_warn(tmp_path):
    assert open_extract(write_extract(tmp_path / "x")).warnings == []
    aware = [e.replace("2025-03-01 09:10", "2025-03-01T09:10Z") for e in EVENTS if "2025-03-01 09:10" in e]
    d = write_extract(tmp_path / "y", events=aware)
    assert open_extract(d).warnings == []


# --------------------------------------------------------------------------- 4. a source column named rowid


@pytest.mark.parametrize("name", ["rowid", "ROWID", "__lv_row"])
def test_source_column_named_rowid_does_not_shadow_row_numbers(tmp_path, name):
    d = write_extract(tmp_path / "x", headers={"persons": f"person_id,birth_date,sex,{name}"},
                      persons=["P1,1950-01-01,F,100", "P2,not-a-date,M,200"])
    ex = open_extract(d)
    _reconciles(ex)
    q = _quarantine(ex, "persons")
    assert q.source_row.tolist() == [2]  # the second data row, not the source's own "rowid" 200 + 1
    assert q[name].tolist() == ["200"]  # the source column is kept, under its own name


def test_parquet_column_named_rowid(tmp_path):
    d = write_extract(tmp_path / "x")
    (d / "persons.csv").unlink()
    pq.write_table(pa.table({"person_id": ["P1", "P2", "P3"], "birth_date": ["1950-01-01", "1960-05-05", "bad"],
                             "sex": ["F", "M", "F"], "rowid": [7, 8, 9]}), d / "persons.parquet")
    ex = open_extract(d)
    _reconciles(ex)
    assert _quarantine(ex, "persons").source_row.tolist() == [3]


# --------------------------------------------------------------------------- 5. an ambiguous decimal comma


def test_ambiguous_thousands_or_decimal_comma_is_quarantined(tmp_path):
    events = [*EVENTS, _lab('"1,234"', code="A1"), _lab('"0,5"', code="A2"), _lab('"1 234,5"', code="A3"),
              "P1,E1,2025-03-01 09:16,medication,ATC,J01CE02,,,,\"2,500\""]
    d = write_extract(tmp_path / "x", events=events)
    ex = open_extract(d)
    _reconciles(ex)
    assert ex.counts["events"].reasons == {"ambiguous_number:value": 1, "ambiguous_number:cost": 1}
    ev = ex.to_pandas("events").set_index("code")
    assert ev.loc["A2", "value"] == 0.5 and ev.loc["A3", "value"] == 1234.5
    q = _quarantine(ex, "events")
    assert "1,234" in q.reason.iloc[0] and "thousands" in q.reason.iloc[0]
    assert "ambiguous_number:<col>" in REASON_CODES


# --------------------------------------------------------------------------- 6. a NUL byte


def test_nul_byte_in_utf8_file_quarantines_its_row_only(tmp_path):
    d = write_extract(tmp_path / "x")
    body = (d / "events.csv").read_bytes()
    (d / "events.csv").write_bytes(body + "P1,E1,2025-03-01 09:20,diagnosis,ICD-10-SE,J0\x006.9,,Gränby,,\n".encode())
    ex = open_extract(d)
    _reconciles(ex)
    assert ex.sources["events"].endswith("events.csv") and "utf-8" in ex.formats["events"]
    assert ex.counts["events"].reasons == {"nul_byte:code": 1}
    q = _quarantine(ex, "events")
    assert q.source_row.tolist() == [5] and "NUL" in q.reason.iloc[0]
    assert "nul_byte:<col>" in REASON_CODES


def test_nul_byte_in_cp1252_file(tmp_path):
    d = write_extract(tmp_path / "x", encoding="cp1252")
    body = (d / "events.csv").read_bytes()
    (d / "events.csv").write_bytes(body + b"P1,E1,2025-03-01 09:20,diagnosis,ICD-10-SE,J06.9,,G\xe4\x00,,\n")
    ex = open_extract(d)
    _reconciles(ex)
    assert ex.counts["events"].reasons == {"nul_byte:unit": 1}


# --------------------------------------------------------------------------- 7. CSV structure


def test_quoted_newline_in_a_field_is_read(tmp_path):
    events = [*EVENTS, 'P1,E1,2025-03-01 09:20,diagnosis,ICD-10-SE,J02.9,,"two\nlines",,']
    d = write_extract(tmp_path / "x", events=events)
    ex = open_extract(d)
    _reconciles(ex)
    assert ex.counts["events"].accepted == 5
    assert ex.to_pandas("events").set_index("code").loc["J02.9", "unit"] == "two\nlines"


def test_quoted_newline_with_a_bad_row_after_it_keeps_row_numbers(tmp_path):
    events = ['P1,E1,2025-03-01 09:20,diagnosis,ICD-10-SE,J02.9,,"two\nlines",,', "P1,E1,bad,diagnosis,X,Y,,,,"]
    d = write_extract(tmp_path / "x", events=events)
    ex = open_extract(d)
    assert _quarantine(ex, "events").source_row.tolist() == [2]


def test_line_longer_than_the_maximum_names_the_cause(tmp_path):
    d = write_extract(tmp_path / "x", events=[*EVENTS, "P1,E1,2025-03-01,diagnosis,LOCAL," + "x" * 2_100_000 + ",,,,"])
    with pytest.raises(InputError) as err:
        open_extract(d)
    line = err.value.one_line()
    assert "\n" not in line and "line 6" in line and "maximum line size" in line
    _one_line_error(_validate(d), "events.csv", "maximum line size")


def test_unterminated_quote_names_the_cause_in_one_line(tmp_path):
    d = write_extract(tmp_path / "x", events=[*EVENTS, 'P1,E1,2025-03-01,lab,NPU,"X' + "y" * 5000])
    _one_line_error(_validate(d), "events.csv:6:", "unterminated quote")


def test_duplicated_column_name_is_an_error_naming_it(tmp_path):
    d = write_extract(tmp_path / "x", headers={"persons": "person_id,birth_date,sex,Sex"},
                      persons=["P1,1950-01-01,F,M"])
    with pytest.raises(InputError) as err:
        open_extract(d)
    assert err.value.column == "sex" and "twice" in err.value.one_line()
    _one_line_error(_validate(d), "persons.csv", "'sex'", "twice")


def test_duplicated_column_name_in_parquet(tmp_path):
    d = write_extract(tmp_path / "x")
    (d / "persons.csv").unlink()
    t = pa.Table.from_arrays([pa.array(["P1"]), pa.array(["1950-01-01"]), pa.array(["F"]), pa.array(["x"])],
                             names=["person_id", "birth_date", "sex", "person_id"])
    pq.write_table(t, d / "persons.parquet")
    _one_line_error(_validate(d), "persons.parquet", "'person_id'", "twice")



def test_validate_and_scan_take_the_declared_extract_end(tmp_path):
    events = [*EVENTS, "P1,,2025-09-01,observation,LOCAL,BMI,27.1,kg/m2,,"]
    d = write_extract(tmp_path / "x", events=events)
    res = CliRunner().invoke(main, ["validate", str(d), "--extract-end", "2025-06-30"])
    assert res.exit_code == 0 and "implausible_date:time" in res.output, res.output
    res = CliRunner().invoke(main, ["scan", str(d), "--extract-end", "2025-06-30", "--out", str(tmp_path / "r"),
                                    "--only", "LV-RX-022"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["data"]["counts"]["events"]["reasons"] == {"implausible_date:time": 1}
