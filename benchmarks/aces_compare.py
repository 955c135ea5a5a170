"""Side by side with ACES (issue 13, deliverable 3): same region, same rules, both tools' time, memory and cases.

Given a canonical extract (``lowvalue synth --persons N --seed 1 --out DATA``), this script

1. exports it to MEDS with DuckDB (``WORK/meds-<precision>/data/0.parquet`` for each precision a template asks for,
   see *Export* below);
2. turns each task template ``benchmarks/aces/<RULE>.yaml`` into ACES task configs, one per tier (``eligible`` and
   ``lowvalue``: ACES gives one cohort per config and a low-value tier is a conjunction over several windows, which
   a single ACES ``label`` cannot express), filling each code-set predicate with a regex generated from the library's
   code set plus the region overlay (``DATA/region-codes``), and checking that regex against every distinct code in
   the export (it must select exactly the codes ``ValueSet.matches`` selects);
3. runs ``aces-cli`` on each config and ``lowvalue scan DATA --codes DATA/region-codes --only RULE`` for each rule,
   then ``lowvalue scan`` of the whole library, each under ``/usr/bin/time -v`` (wall time, peak RSS);
4. compares index events: lowvalue's ``candidates.parquet`` (eligible / specific) against the ACES rows
   (subject_id, prediction_time), both reduced to distinct (person, index time) keys because ACES works on one row
   per (subject, timestamp) while lowvalue judges every candidate event; the key's time is the index time as exported
   (the day in ``meds-day``, the exact time otherwise, unless a diagnosis in ``meds-mixed``). lowvalue's "low value"
   tier is ``specific``.

Prints a Markdown table and writes it to ``--report``; cases found by one tool only are written to
``WORK/diff-<RULE>-<tier>.csv`` with the facts needed to explain them.

Export (MEDS 0.3/0.4 data schema, plus two extension columns):

* ``subject_id`` int64: persons numbered in person_id order (the map is kept in ``WORK/subjects.parquet``);
* ``time``: ``MEDS_BIRTH`` at the birth date, ``MEDS_DEATH`` at the death date, a static ``SEX//F|M|U`` row with a null
  time; events at their time: truncated to the day in ``meds-day`` (so ACES's timestamp-relative windows of whole
  days select the same calendar days as lowvalue's ``d`` windows), exact in ``meds-exact``, and in ``meds-mixed``
  exact except diagnoses, dated to the day (for a rule with an hour window on labs and calendar-day windows on
  diagnoses: see benchmarks/aces/LV-HOSP-027.yaml);
* ``code`` = ``VOCAB//CODE``: the vocabulary as lowvalue's MEDS adapter names it (``ICD10SE``, ``KVA``, ``ATC``,
  ``NPU``, ...; a local system keeps its name, e.g. ``LOKAL-RIS``) and the code in lowvalue's compared form
  (trimmed, upper case, ICD family without the dot): ``ICD10SE//J019``, ``ATC//J01CA04``, ``NPU//NPU28309``. ACES
  predicates are then anchored regexes such as ``^(?:ICD10SE//(?:J01))``;
* ``numeric_value`` float32 (the lab value as recorded), ``unit`` (string, as recorded) and ``setting`` (the setting of
  the event's encounter): MEDS allows extra columns and ACES predicates test them with ``other_cols``.
  lowvalue's own MEDS adapter reads this export back (``--from meds``; it has no encounters, so no settings).

Usage (the project's venv, ACES in its own venv):

    lowvalue synth --persons 100000 --seed 1 --out /tmp/aces-r100k
    python benchmarks/aces_compare.py /tmp/aces-r100k --work /tmp/aces-work \
        --aces /work/aces-venv/bin/aces-cli --report /tmp/aces-r100k-report.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import yaml

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "aces"
RULES = ["LV-ABX-005", "LV-HOSP-027", "LV-SCR-008"]

# lowvalue system -> MEDS vocabulary prefix (the names lowvalue/data/mappings/vocabularies.csv reads back)
PREFIX = {
    "ICD-10-SE": "ICD10SE", "ICD-10-CM": "ICD10CM", "ICD-10": "ICD10", "ICD-9-CM": "ICD9CM",
    "ICD-10-PCS": "ICD10PCS", "KVÅ": "KVA", "ATC": "ATC", "NPU": "NPU", "LOINC": "LOINC",
    "SNOMED-CT": "SNOMED", "RxNorm": "RXNORM", "CPT": "CPT4",
}
ICD_FAMILY = ("ICD-10-SE", "ICD-10-CM", "ICD-10", "ICD-9-CM", "KSH97-P")


def _sh(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``cmd`` under /usr/bin/time -v; return wall seconds and peak RSS in GB (raise on failure)."""
    tfile = log.with_suffix(".time")
    with open(log, "w") as out:
        rc = subprocess.call(["/usr/bin/time", "-v", "-o", str(tfile), *cmd], stdout=out, stderr=subprocess.STDOUT,
                             env=env)
    text = tfile.read_text()
    if rc != 0:
        raise SystemExit(f"failed ({rc}): {' '.join(cmd)}\n  see {log}\n" + log.read_text()[-3000:])
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    secs = 0.0
    for part in wall.split(":"):
        secs = secs * 60 + float(part)
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return {"wall": secs, "rss": rss_kb / 1024 / 1024}


# ---------------------------------------------------------------- export

TIME_SQL = {
    "day": "date_trunc('day', e.time)::TIMESTAMP",
    "exact": "e.time",
    "mixed": "CASE WHEN e.kind = 'diagnosis' THEN date_trunc('day', e.time)::TIMESTAMP ELSE e.time END",
}


def export_meds(data: Path, work: Path, precisions: list[str]) -> dict:
    """Write WORK/meds-<precision>/data/0.parquet for each precision and WORK/subjects.parquet; return facts."""
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"CREATE TEMP TABLE subj AS SELECT person_id, row_number() OVER (ORDER BY person_id)::BIGINT AS subject_id "
                f"FROM read_parquet('{data}/persons.parquet')")
    con.execute(f"COPY subj TO '{work}/subjects.parquet' (FORMAT parquet)")
    systems = con.execute(f"SELECT system, list(DISTINCT kind) FROM read_parquet('{data}/events.parquet') GROUP BY 1").fetchall()
    kinds = {}
    for system, ks in systems:
        if len(ks) != 1:
            raise SystemExit(f"system {system} is used for several kinds {ks}: the MEDS code would not tell them apart")
        kinds[system] = ks[0]
    prefix_case = "CASE e.system " + " ".join(f"WHEN '{s}' THEN '{p}'" for s, p in PREFIX.items()) + " ELSE e.system END"
    icd = ", ".join(f"'{s}'" for s in ICD_FAMILY)
    code = (f"{prefix_case} || '//' || CASE WHEN e.system IN ({icd}) THEN replace(upper(trim(e.code)), '.', '') "
            f"ELSE upper(trim(e.code)) END")
    facts = {"kinds": kinds}
    for precision in precisions:
        t = TIME_SQL[precision]
        out = work / f"meds-{precision}" / "data"
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        con.execute(f"""
            COPY (
              SELECT subject_id, time, code, numeric_value, unit, setting FROM (
                SELECT s.subject_id, NULL::TIMESTAMP AS time, 'SEX//' || p.sex AS code, NULL::FLOAT AS numeric_value,
                       NULL::VARCHAR AS unit, NULL::VARCHAR AS setting, 0 AS o
                FROM read_parquet('{data}/persons.parquet') p JOIN subj s USING (person_id)
                UNION ALL
                SELECT s.subject_id, p.birth_date::TIMESTAMP, 'MEDS_BIRTH', NULL, NULL, NULL, 1
                FROM read_parquet('{data}/persons.parquet') p JOIN subj s USING (person_id)
                UNION ALL
                SELECT s.subject_id, p.death_date::TIMESTAMP, 'MEDS_DEATH', NULL, NULL, NULL, 3
                FROM read_parquet('{data}/persons.parquet') p JOIN subj s USING (person_id) WHERE p.death_date IS NOT NULL
                UNION ALL
                SELECT s.subject_id, {t}, {code}, e.value::FLOAT, e.unit, en.setting, 2
                FROM read_parquet('{data}/events.parquet') e JOIN subj s USING (person_id)
                LEFT JOIN read_parquet('{data}/encounters.parquet') en USING (encounter_id)
              ) ORDER BY subject_id, time NULLS FIRST, o, code
            ) TO '{out}/0.parquet' (FORMAT parquet, ROW_GROUP_SIZE 1000000)""")
        facts[f"export_{precision}_s"] = round(time.perf_counter() - t0, 1)
    facts["rows"] = con.execute(f"SELECT count(*) FROM read_parquet('{out}/0.parquet')").fetchone()[0]
    (work / "export.json").write_text(json.dumps(facts, indent=1))
    return facts


# ---------------------------------------------------------------- predicates from code sets

def _esc(s: str) -> str:
    return "".join("\\" + c if c in ".^$*+?()[]{}|\\" else c for c in s)


def _cls(lo: int, hi: int) -> str:
    return f"[\\x{{{lo:X}}}-\\x{{{hi:X}}}]"


ANY = _cls(0, 0x10FFFF)


def _ge(s: str) -> str:
    """Strings of len(s) that are >= s (code-point order, as Python compares)."""
    if not s:
        return ""
    alts = [_esc(s[0]) + "(?:" + _ge(s[1:]) + ")"]
    if ord(s[0]) < 0x10FFFF:
        alts.append(_cls(ord(s[0]) + 1, 0x10FFFF) + ANY * (len(s) - 1))
    return "|".join(alts)


def _le(s: str) -> str:
    if not s:
        return ""
    alts = [_esc(s[0]) + "(?:" + _le(s[1:]) + ")"]
    if ord(s[0]) > 0:
        alts.append(_cls(0, ord(s[0]) - 1) + ANY * (len(s) - 1))
    return "|".join(alts)


def _between(lo: str, hi: str) -> str:
    """Strings of len(lo) == len(hi) with lo <= s <= hi."""
    if not lo:
        return ""
    if lo[0] == hi[0]:
        return _esc(lo[0]) + "(?:" + _between(lo[1:], hi[1:]) + ")"
    alts = [_esc(lo[0]) + "(?:" + _ge(lo[1:]) + ")"]
    if ord(hi[0]) - ord(lo[0]) > 1:
        alts.append(_cls(ord(lo[0]) + 1, ord(hi[0]) - 1) + ANY * (len(lo) - 1))
    alts.append(_esc(hi[0]) + "(?:" + _le(hi[1:]) + ")")
    return "|".join(alts)


def codeset_regex(vs, kind: str, kinds: dict[str, str]) -> str:
    """Anchored regex over exported codes for the systems of ``vs`` whose events are of ``kind`` in this extract."""
    parts = []
    for system, entries in sorted(vs.codes.items()):
        if kinds.get(system) != kind or not entries:
            continue
        alts = []
        for e in entries:
            if e.kind == "exact":
                alts.append(_esc(e.low) + "$")
            elif e.kind == "prefix":
                alts.append(_esc(e.low))
            else:
                alts.append("(?:" + _between(e.low, e.high) + ")")
        parts.append(_esc(PREFIX.get(system, system)) + "//(?:" + "|".join(alts) + ")")
    if not parts:
        return "^NO_CODE_OF_THIS_SET_IN_THE_EXTRACT$"
    return "^(?:" + "|".join(parts) + ")"


def check_regex(con, meds: Path, name: str, regex: str, vs, kind: str, kinds: dict[str, str]) -> int:
    """The regex must pick exactly the exported codes that the code set matches (same system kind); return count."""
    rows = con.execute(f"SELECT DISTINCT code, regexp_matches(code, ?) FROM read_parquet('{meds}') "
                       "WHERE code LIKE '%//%'", [regex]).fetchall()  # RE2: the syntax used is also Rust regex's
    back = {v: k for k, v in PREFIX.items()}
    want, got = set(), set()
    for c, hit in rows:
        p, _, code = c.partition("//")
        system = back.get(p, p)
        if kinds.get(system) == kind and vs.matches(system, code):
            want.add(c)
        if hit:
            got.add(c)
    if want != got:
        raise SystemExit(f"predicate {name}: regex and code set disagree: only regex {sorted(got - want)[:10]}, "
                         f"only code set {sorted(want - got)[:10]}")
    return len(want)


def build_configs(template: Path, rs, facts: dict, work: Path, con) -> dict:
    """Write WORK/aces/<RULE>_<tier>.yaml for each tier of a template; return {tier: path} and the export used."""
    t = yaml.safe_load(template.read_text())
    export = t["export"]
    meds = work / f"meds-{export}" / "data" / "0.parquet"
    kinds = facts["kinds"]
    preds: dict[str, dict] = {}
    ncodes = {}
    for name, p in t["predicates"].items():
        p = dict(p)
        if "codeset" not in p:
            preds[name] = p
            continue
        vs = rs.valueset(p.pop("codeset"))
        kind = p.pop("kind")
        regex = codeset_regex(vs, kind, kinds)
        ncodes[name] = check_regex(con, meds, name, regex, vs, kind, kinds)
        value = p.pop("value", None)
        if value is None:
            preds[name] = {"code": {"regex": regex}, **p}
            continue
        # a value test: one predicate per unit recorded for these codes, the threshold converted to that unit
        units = [u for (u,) in con.execute(
            f"SELECT DISTINCT unit FROM read_parquet('{meds}') WHERE regexp_matches(code, ?) AND numeric_value IS NOT NULL",
            [regex]).fetchall()]
        if any(u is None or u.strip() == "" for u in units):
            raise SystemExit(f"{name}: values without a unit (lowvalue reads them in the canonical unit; "
                             "an ACES other_cols test cannot select a missing unit)")
        parts = []
        for i, u in enumerate(sorted(units)):
            f = vs.units.factor(u) if vs.units else 1.0
            if f is None:
                continue  # lowvalue drops values in units it cannot convert
            q = {"code": {"regex": regex}, "unit": u, **p}
            if "min" in value:
                q["value_min"] = float(value["min"]) / f
                q["value_min_inclusive"] = bool(value.get("min_inclusive", True))
            else:  # usable value: any non-null number
                q["value_min"] = -1e300
                q["value_min_inclusive"] = True
            preds[f"{name}__{i}"] = q
            parts.append(f"{name}__{i}")
        if len(parts) == 1:
            preds[name] = preds.pop(parts[0])
        else:
            preds[name] = {"expr": f"or({', '.join(parts)})"}
    out = {}
    (work / "aces").mkdir(exist_ok=True)
    for tier, spec in t["tiers"].items():
        cfg = {
            "description": f"{t['rule']} ({tier} tier), generated by benchmarks/aces_compare.py from {template.name}",
            "predicates": preds,
            "trigger": spec["trigger"],
            "windows": {w: t["windows"][w] for w in spec["windows"]},
        }
        if t.get("patient_demographics"):
            cfg["patient_demographics"] = t["patient_demographics"]
        path = work / "aces" / f"{t['rule']}_{tier}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False, width=10_000))
        out[tier] = path
    return {"configs": out, "export": export, "meds": meds, "codes": ncodes}


# ---------------------------------------------------------------- compare

def compare(con, work: Path, rule: str, lv_dir: Path, aces_out: dict[str, Path], export: str, index_kind: str) -> dict:
    # the key's time is the index time as exported
    day = export == "day" or (export == "mixed" and index_kind == "diagnosis")
    key_time = "date_trunc('day', c.index_time)::TIMESTAMP" if day else "c.index_time"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE lv AS
        SELECT s.subject_id, {key_time} AS t, bool_or(c.eligible) AS eligible, bool_or(c.specific) AS lowvalue,
               count(*) AS n_candidates
        FROM read_parquet('{lv_dir}/candidates.parquet') c JOIN read_parquet('{work}/subjects.parquet') s USING (person_id)
        WHERE c.rule_id = '{rule}' GROUP BY ALL""")
    res = {"lv_candidates": con.execute("SELECT sum(n_candidates) FROM lv").fetchone()[0] or 0}
    for tier in ("eligible", "lowvalue"):
        con.execute(f"""CREATE OR REPLACE TEMP TABLE a AS SELECT DISTINCT subject_id, prediction_time AS t
                        FROM read_parquet('{aces_out[tier]}')""")
        only_lv = con.execute(f"SELECT subject_id, t FROM lv WHERE {tier} EXCEPT SELECT subject_id, t FROM a").fetchall()
        only_aces = con.execute(f"SELECT subject_id, t FROM a EXCEPT SELECT subject_id, t FROM lv WHERE {tier}").fetchall()
        diff = work / f"diff-{rule}-{tier}.csv"
        diff.unlink(missing_ok=True)
        res[tier] = {
            "lowvalue": con.execute(f"SELECT count(*) FROM lv WHERE {tier}").fetchone()[0],
            "aces": con.execute("SELECT count(*) FROM a").fetchone()[0],
            "aces_rows": con.execute(f"SELECT count(*) FROM read_parquet('{aces_out[tier]}')").fetchone()[0],
            "only_lowvalue": len(only_lv),
            "only_aces": len(only_aces),
        }
        if only_lv or only_aces:
            with open(diff, "w") as f:
                f.write("side,subject_id,person_id,index_time\n")
                m = dict(con.execute(f"SELECT subject_id, person_id FROM read_parquet('{work}/subjects.parquet')").fetchall())
                for side, rows in (("only_lowvalue", only_lv), ("only_aces", only_aces)):
                    for sid, ts in sorted(rows):
                        f.write(f"{side},{sid},{m[sid]},{ts}\n")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path, help="canonical lowvalue extract (persons/encounters/events Parquet)")
    ap.add_argument("--work", type=Path, required=True, help="scratch folder (MEDS export, configs, outputs)")
    ap.add_argument("--aces", default="/work/aces-venv/bin/aces-cli", help="the aces-cli executable")
    ap.add_argument("--lowvalue", default=f"{sys.executable} -m lowvalue.cli", help="command that runs lowvalue")
    ap.add_argument("--rules", nargs="*", default=RULES)
    ap.add_argument("--codes", type=Path, help="region code overlay [default: DATA/region-codes]")
    ap.add_argument("--report", type=Path, help="write the Markdown table here too")
    ap.add_argument("--skip-export", action="store_true", help="reuse WORK/meds-* from an earlier run")
    ap.add_argument("--skip-library", action="store_true", help="do not time the whole-library scan")
    ap.add_argument("--repeat", type=int, default=1, help="time each command this many times and keep the fastest")
    args = ap.parse_args()

    from lowvalue.rules.library import load_library
    from lowvalue.rules.overlay import apply_overlay, load_overlay

    data = args.data.resolve()
    work = args.work.resolve()
    codes = (args.codes or data / "region-codes").resolve()
    work.mkdir(parents=True, exist_ok=True)
    rs = apply_overlay(load_library(), load_overlay(codes))
    precisions = sorted({yaml.safe_load((TEMPLATES / f"{r}.yaml").read_text())["export"] for r in args.rules})
    if args.skip_export and (work / "export.json").exists():
        facts = json.loads((work / "export.json").read_text())
    else:
        print(f"exporting to MEDS ({', '.join(precisions)}) ...", file=sys.stderr)
        facts = export_meds(data, work, precisions)
        print(f"  {facts['rows']:,} rows; " + ", ".join(f"{p} {facts[f'export_{p}_s']} s" for p in precisions),
              file=sys.stderr)
    con = duckdb.connect()
    lv_cmd = args.lowvalue.split()
    env = dict(os.environ)

    def timed(cmd: list[str], log: Path, before=None) -> dict:
        best = None
        for _ in range(args.repeat):
            if before:
                before()
            m = _sh(cmd, log, env)
            best = m if best is None or m["wall"] < best["wall"] else best
        return best

    rows, details = [], {}
    for rule in args.rules:
        b = build_configs(TEMPLATES / f"{rule}.yaml", rs, facts, work, con)
        aces_m, aces_out = {}, {}
        for tier, cfg in b["configs"].items():
            name = cfg.stem
            out = work / "aces" / f"{name}.parquet"
            cmd = [args.aces, f"data.path={b['meds']}", "data.standard=meds", f"cohort_dir={work / 'aces'}",
                   f"cohort_name={name}"]
            print(f"ACES {name} ...", file=sys.stderr)
            aces_m[tier] = timed(cmd, work / "aces" / f"{name}.log")
            aces_out[tier] = out
        lv_dir = work / "lowvalue" / rule
        lv_dir.parent.mkdir(exist_ok=True)
        print(f"lowvalue {rule} ...", file=sys.stderr)
        lv_m = timed([*lv_cmd, "scan", str(data), "--codes", str(codes), "--only", rule, "--out", str(lv_dir)],
                     work / "lowvalue" / f"{rule}.log")
        cmp_ = compare(con, work, rule, lv_dir, aces_out, b["export"], rs.rules[rule].index.kind)
        details[rule] = {"aces": aces_m, "lowvalue": lv_m, "compare": cmp_, "export": b["export"],
                         "codes_per_predicate": b["codes"]}
        same = lambda t: (  # noqa: E731
            "same" if cmp_[t]["only_lowvalue"] == cmp_[t]["only_aces"] == 0
            else f"differ: {cmp_[t]['only_lowvalue']} only lowvalue / {cmp_[t]['only_aces']} only ACES")
        aces_wall = sum(m["wall"] for m in aces_m.values())
        aces_rss = max(m["rss"] for m in aces_m.values())
        rows.append([rule, "lowvalue scan --only", f"{lv_m['wall']:.1f}", f"{lv_m['rss']:.2f}",
                     f"{cmp_['eligible']['lowvalue']:,}", f"{cmp_['lowvalue']['lowvalue']:,}",
                     f"{cmp_['lv_candidates']:,} candidate events (meds-{b['export']})"])
        rows.append([rule, "ACES (2 task configs)",
                     f"{aces_wall:.1f} ({aces_m['eligible']['wall']:.1f} + {aces_m['lowvalue']['wall']:.1f})",
                     f"{aces_rss:.2f}", f"{cmp_['eligible']['aces']:,}", f"{cmp_['lowvalue']['aces']:,}",
                     f"eligible {same('eligible')}; low value {same('lowvalue')}"])
    if not args.skip_library:
        lv_dir = work / "lowvalue" / "_library"
        print("lowvalue whole library ...", file=sys.stderr)
        try:
            m = timed([*lv_cmd, "scan", str(data), "--codes", str(codes), "--out", str(lv_dir)],
                      work / "lowvalue" / "_library.log")
        except SystemExit as err:  # keep the per-rule table (e.g. the scan was stopped for memory)
            print(err, file=sys.stderr)
            rows.append(["whole library", "lowvalue scan", "failed", "", "", "", ""])
        else:
            n = con.execute(f"SELECT count(DISTINCT rule_id) FROM read_parquet('{lv_dir}/candidates.parquet')").fetchone()[0]
            details["_library"] = {"lowvalue": m}
            rows.append(["whole library", f"lowvalue scan ({len(rs.do_not_do)} rules, {n} with candidates)",
                         f"{m['wall']:.1f}", f"{m['rss']:.2f}", "", "", ""])
    head = ["rule", "tool", "wall s", "peak RSS GB", "eligible index events", "low-value index events", "matches"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    persons = con.execute(f"SELECT count(*) FROM read_parquet('{data}/persons.parquet')").fetchone()[0]
    text = (f"{persons:,} persons, {facts['rows']:,} MEDS rows; best of {args.repeat}; "
            "index events = distinct (person, index time) keys\n\n" + "\n".join(lines) + "\n")
    print(text)
    (work / "details.json").write_text(json.dumps(details, indent=1, default=str))
    if args.report:
        args.report.write_text(text)


if __name__ == "__main__":
    main()
