"""MEDS labels and the OMOP cohort: schemas, counts against the scan, subject ids that map back, stable cohort ids."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lowvalue.export import export
from lowvalue.export.labels import COHORT_COLUMNS, LABEL_SCHEMA, cohort_definition_id, subject_ids


def test_meds_labels_one_task_per_rule_in_the_label_schema(example_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels"
    export(example_results, "meds-labels", out)
    cand = pd.read_parquet(example_results / "candidates.parquet")
    flags = pd.read_parquet(example_results / "flags.parquet")
    mapping = pd.read_csv(out / "subject_ids.csv", dtype={"person_id": str})  # the example's ids are P0000016 …
    back = dict(zip(mapping.subject_id, mapping.person_id))
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(cand.rule_id.unique())
    assert "FOR USE INSIDE THE REGION ONLY" in (out / "README.txt").read_text(encoding="utf-8")
    for rule_id, g in cand.groupby("rule_id"):
        t = pq.read_table(out / rule_id / "labels.parquet")
        assert t.schema.equals(LABEL_SCHEMA), t.schema
        df = t.to_pandas()
        assert len(df) == len(g) and int(df.boolean_value.sum()) == int((flags.rule_id == rule_id).sum())
        assert set(df.categorical_value.dropna()) <= {"low value", "likely low value"}
        assert (df.categorical_value.notna() == df.boolean_value).all()
        assert sorted(df.subject_id.map(back)) == sorted(g.person_id)  # every label maps back to its person
        assert (df.sort_values(["subject_id", "prediction_time"]).index == df.index).all()


def test_integer_person_ids_are_the_meds_subject_ids(tmp_path: Path) -> None:
    """A MEDS extract through the adapter and back: the label's subject_id is the source's subject_id."""
    from lowvalue.data.adapters import convert

    src = tmp_path / "meds" / "data"
    src.mkdir(parents=True)
    ids = [123456789012345, 7, 2**62 + 5]
    rows = []
    for s in ids:
        rows += [(s, pd.Timestamp("1950-01-01"), "MEDS_BIRTH"), (s, pd.Timestamp("2023-05-01 10:00"), "ICD10CM//J20.9")]
    table = pa.table({"subject_id": pa.array([r[0] for r in rows], pa.int64()),
                      "time": pa.array([r[1] for r in rows], pa.timestamp("us")),
                      "code": [r[2] for r in rows], "numeric_value": pa.array([None] * len(rows), pa.float32())})
    pq.write_table(table, src / "0.parquet")
    convert("meds", tmp_path / "meds", tmp_path / "canonical")
    persons = pd.read_parquet(tmp_path / "canonical" / "persons.parquet")
    got, mapping = subject_ids(persons.person_id)
    assert mapping is None and sorted(got.tolist()) == sorted(ids)


def test_subject_ids_hash_what_is_not_an_integer() -> None:
    got, mapping = subject_ids(pd.Series(["P1", "P2", "P1"]))
    assert mapping is not None and got.iloc[0] == got.iloc[2] != got.iloc[1] and (got >= 0).all()
    assert dict(zip(mapping.person_id, mapping.subject_id))["P1"] == got.iloc[0]
    again, _ = subject_ids(pd.Series(["P2"]))
    assert again.iloc[0] == got.iloc[1]  # stable: the same id gets the same number in any export
    _, m = subject_ids(pd.Series(["007", "8"]))  # '007' is not the decimal string of an integer: not read as 7
    assert m is not None


def test_omop_cohort_table_and_its_stable_definition_ids(example_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "omop"
    export(example_results, "omop-cohort", out)
    cohort = pd.read_csv(out / "cohort.csv")
    defs = pd.read_csv(out / "cohort_definition.csv")
    flags = pd.read_parquet(example_results / "flags.parquet")
    assert list(cohort.columns) == COHORT_COLUMNS
    assert "ENDAST FÖR ANVÄNDNING INOM REGIONEN" in (out / "README.txt").read_text(encoding="utf-8")
    assert not cohort.duplicated().any() and (cohort.cohort_start_date == cohort.cohort_end_date).all()
    assert set(cohort.cohort_definition_id) <= set(defs.cohort_definition_id)
    assert defs.cohort_definition_id.is_unique and len(defs) == 2 * flags.rule_id.nunique()
    assert cohort.cohort_definition_id.between(10**9, 2**31 - 1).all()
    per_day = flags.assign(day=flags.index_time.dt.date).drop_duplicates(["rule_id", "variant", "person_id", "day"])
    assert len(cohort) == len(per_day)
    d = defs.set_index(["rule_id", "variant"]).cohort_definition_id
    for (rule_id, variant), n in per_day.groupby(["rule_id", "variant"]).size().items():
        assert (cohort.cohort_definition_id == d[(rule_id, variant)]).sum() == n
    # the ids are a function of rule id and tier alone: a new scan, region or library keeps them
    assert cohort_definition_id("LV-ABX-003", "specific") == 1465688703
    assert cohort_definition_id("LV-ABX-003", "sensitive") == 1633729088
    assert defs.set_index("cohort_definition_id").loc[1465688703, "tier"] == "low value"


@pytest.mark.parametrize("fmt", ["meds-labels", "omop-cohort"])
def test_label_exports_replace_their_folder_but_nobody_elses(example_results: Path, tmp_path: Path, fmt: str) -> None:
    from lowvalue.errors import InputError

    other = tmp_path / "someone"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a lowvalue export folder"):
        export(example_results, fmt, other)
    assert (other / "notes.txt").read_text() == "mine"
