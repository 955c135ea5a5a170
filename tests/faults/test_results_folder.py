"""A results folder cannot be half-written, mixed or stale; pseudonymised folders hold nothing identifying;
every failure of the file system or of a damaged artefact is one line and exit 2."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import lowvalue
from lowvalue.cli import main
from lowvalue.errors import InputError
from lowvalue.results import read_derived, read_manifest, write_derived
from tests.adapters.fixtures import write_synthea

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "synthetic_data"
CODES = EXAMPLE / "region-codes"
ONLY = ["--only", "LV-RX-022", "--only", "LV-HOSP-027"]


def _run(*args: str, env: dict | None = None):
    return CliRunner(env=env).invoke(main, [str(a) for a in args])


def _scan(out: Path, *extra: str, data: Path = EXAMPLE):
    return _run("scan", data, "--codes", CODES, "--out", out, *ONLY, *extra)


def test_a_failed_write_leaves_the_earlier_folder_whole_and_no_partial_folder(tmp_path, monkeypatch):
    out = tmp_path / "r"
    assert _scan(out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.parquet")}
    import lowvalue.results as results

    real = results.copy_table  # the engine's own writer, which writes features.parquet

    def dies_on_features(con, select, path):
        if path.name == "features.parquet":
            raise KeyboardInterrupt  # as a kill would, half-way through the folder
        return real(con, select, path)

    monkeypatch.setattr(results, "copy_table", dies_on_features)
    with pytest.raises(KeyboardInterrupt):
        lowvalue.scan(EXAMPLE, codes=CODES, only=["LV-RX-022"]).write(out)
    assert {p.name: p.read_bytes() for p in out.glob("*.parquet")} == before
    assert not list(tmp_path.glob(".r.partial-*"))
    read_manifest(out)


def test_a_killed_scan_leaves_no_half_folder_and_the_next_scan_cleans_up(tmp_path):
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "lowvalue.cli", "scan", str(EXAMPLE), "--codes", str(CODES),
                             "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".r.partial-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() or read_manifest(out)  # nothing, or a complete earlier scan: never half a folder
    assert _scan(out).exit_code == 0
    assert not list(tmp_path.glob(".r.partial-*"))
    read_manifest(out)


def test_two_scans_into_one_folder_cannot_interleave(tmp_path):
    out = tmp_path / "r"
    with open(tmp_path / ".r.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another scan is writing
        res = _scan(out)
    assert res.exit_code == 2 and "another scan is writing this results folder" in res.output
    assert "Traceback" not in res.output and not out.exists()


def test_a_new_scan_replaces_derived_files_and_stale_ones_are_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    other = write_synthea(tmp_path / "synthea")
    assert _scan(a).exit_code == 0
    assert _run("scan", other, "--from", "synthea", "--out", b).exit_code == 0
    write_derived(pd.DataFrame({"flag_id": ["x"], "verdict": ["confirmed"]}), a, "verdicts.parquet")
    assert len(read_derived(a / "verdicts.parquet", a, made_by="test")) == 1
    (b / "verdicts.parquet").write_bytes((a / "verdicts.parquet").read_bytes())  # a file from another scan
    res = _run("report", b, "--out", tmp_path / "b.html")
    assert res.exit_code == 2 and "verdicts.parquet: was made from another scan" in res.output
    assert "data fingerprint" in res.output and "lowvalue review export" in res.output
    assert _run("scan", other, "--from", "synthea", "--out", a).exit_code == 0  # other data into the same folder
    assert not (a / "verdicts.parquet").exists()


@pytest.mark.parametrize("damage, message", [
    (lambda r: (r / "manifest.json").unlink(), "has no manifest.json"),
    (lambda r: (r / "manifest.json").write_text(json.dumps({**json.loads((r / "manifest.json").read_text()),
                                                             "complete": False})), "holds an unfinished scan"),
    (lambda r: (r / "manifest.json").write_text("{\"complete\": tr"), "is not readable JSON"),
    (lambda r: (r / "flags.parquet").unlink(), "is missing flags.parquet"),
])
@pytest.mark.parametrize("command", [["report", "{r}", "--out", "{r}/x.html"], ["risk", "excess", "{r}"],
                                     ["risk", "train", "{r}", "--out", "{r}/../m"]])
def test_consumers_refuse_an_incomplete_folder_with_one_line(tmp_path, damage, message, command):
    out = tmp_path / "r"
    assert _scan(out).exit_code == 0
    damage(out)
    res = _run(*[c.format(r=out) for c in command])
    assert res.exit_code == 2 and message in res.output and "lowvalue scan DATA --out RESULTS" in res.output, res.output
    assert "Traceback" not in res.output


def test_pseudonymised_folder_holds_no_original_id_or_birth_date(tmp_path):
    """A Synthea folder (so a converted copy is made) with rejected rows (so quarantine has raw ids)."""
    src = write_synthea(tmp_path / "synthea")
    key = {"LOWVALUE_PSEUDONYM_KEY": "a-secret-key-of-enough-length"}
    res = _run("scan", src, "--from", "synthea", "--out", tmp_path / "r", "--pseudonymise", env=key)
    assert res.exit_code == 2 and "--pseudonymise needs --quarantine" in res.output
    res = _run("scan", src, "--from", "synthea", "--out", tmp_path / "r", "--pseudonymise",
               "--quarantine", tmp_path / "r" / "q", env=key)
    assert res.exit_code == 2 and "inside the pseudonymised results folder" in res.output
    res = _run("scan", src, "--from", "synthea", "--out", tmp_path / "r", "--pseudonymise",
               "--quarantine", tmp_path / "quarantine", env=key)
    assert res.exit_code == 0, res.output
    plain = tmp_path / "plain"
    assert _run("scan", src, "--from", "synthea", "--out", plain).exit_code == 0
    assert (plain / "converted").is_dir()  # without pseudonymisation the canonical copy is kept, as before
    persons = pd.read_parquet(plain / "converted" / "persons.parquet")
    secrets = set(persons.person_id) | {str(d) for d in persons.birth_date}
    secrets |= set(pd.read_parquet(plain / "converted" / "encounters.parquet").encounter_id)
    secrets |= {"p-99", "p-4", "e-4"}  # only in rejected rows
    found = []
    for f in (tmp_path / "r").rglob("*"):
        if not f.is_file() or f.relative_to(tmp_path / "r").parts[0] == "rules":  # the rule library's copy: no data
            continue
        text = pd.read_parquet(f).to_csv() if f.suffix == ".parquet" else f.read_text(errors="replace")
        found += [(f.name, s) for s in secrets if s in text]
    assert not found and list((tmp_path / "r").glob("*.parquet"))
    assert any((tmp_path / "quarantine").rglob("*.parquet"))  # rejected rows are kept, where the user said
    assert (tmp_path / "quarantine" / "conversion.json").is_file()


def test_working_copies_of_killed_commands_are_removed_by_the_next(tmp_path):
    from lowvalue import workdir

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = workdir.root() / f"convert.{dead.pid}.abc"
    stale.mkdir()
    (stale / "persons.csv").write_text("person_id\nP1\n")
    with workdir.private_workdir("convert") as d:
        assert d.is_dir() and oct(workdir.root().stat().st_mode)[-3:] == "700"
    assert not stale.exists() and not d.exists()


@pytest.mark.parametrize("setup, args, message", [
    (lambda t: (t / "file").write_text("x"), ["--out", "{t}/file"], "exists and is not a folder"),
    (lambda t: (t / "file").write_text("x"), ["--out", "{t}/file/results"], "file: File exists"),
    (lambda t: ((t / "home").mkdir(), (t / "home" / "thesis.docx").write_text("x")), ["--out", "{t}/home"],
     "is not empty and is not a lowvalue results folder"),
])
def test_a_bad_output_folder_is_one_line(tmp_path, setup, args, message):
    setup(tmp_path)
    res = _run("scan", EXAMPLE, *[a.format(t=tmp_path) for a in args], *ONLY)
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output, res.output


def test_damaged_artefacts_are_one_line(tmp_path):
    out = tmp_path / "r"
    assert _scan(out).exit_code == 0
    model = tmp_path / "m"
    model.mkdir()
    (model / "model.json").write_text('{"format": "lowvalue-risk-model", "booster": "tree')
    res = _run("risk", "score", out, "--model", model)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    data = (out / "flags.parquet").read_bytes()
    (out / "flags.parquet").write_bytes(data[: len(data) // 2])
    res = _run("report", out, "--out", tmp_path / "x.html")
    assert res.exit_code == 2 and "Traceback" not in res.output and "flags.parquet" in res.output, res.output


def test_a_scan_where_nothing_is_evaluable_writes_empty_tables_the_report_reads(tmp_path):
    frames = {"persons": pd.DataFrame({"person_id": ["p"], "birth_date": [pd.Timestamp("1950-01-01").date()],
                                       "sex": ["F"]}),
              "encounters": pd.DataFrame({"encounter_id": ["e"], "person_id": ["p"],
                                          "start_time": [pd.Timestamp("2024-01-01 10:00")],
                                          "end_time": [pd.Timestamp("2024-01-01 11:00")], "setting": ["primary_care"],
                                          "unit": ["VC"]}),
              "events": pd.DataFrame({"person_id": ["p"], "encounter_id": ["e"], "time": [pd.Timestamp("2024-01-01 10:00")],
                                      "kind": ["diagnosis"], "system": ["ICD-10-SE"], "code": ["Z00.0"]})}
    lowvalue.scan(frames).write(tmp_path / "r")
    assert read_manifest(tmp_path / "r")["complete"] is True
    assert pd.read_parquet(tmp_path / "r" / "flags.parquet").empty
    res = _run("report", tmp_path / "r", "--out", tmp_path / "x.html")
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    for args in (["risk", "train", tmp_path / "r", "--out", tmp_path / "m"], ["risk", "excess", tmp_path / "r"],
                 ["risk", "triage", tmp_path / "r"]):
        res = _run(*args)
        assert res.exit_code == 2 and "has no judged interventions" in res.output, (args, res.output)
    assert _run("review", "init", tmp_path / "r", "--db", tmp_path / "db.sqlite").exit_code == 0


def test_read_manifest_names_the_folder(tmp_path):
    with pytest.raises(InputError, match="is not a results folder"):
        read_manifest(tmp_path / "nothing")
    assert os.path.basename(str(tmp_path)) in str(pytest.raises(InputError, read_manifest, tmp_path).value)
