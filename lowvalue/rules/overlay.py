"""A region's own codes, added to the library's code sets without editing the library.

Every region codes some things its own way: radiology systems (RIS) with local
examination codes, laboratories with local analysis codes, primary care with
KSH97-P, a local drug list. A *code overlay* is a folder of YAML files, one per
library code set it extends (format in ``docs/region-codes.md``)::

    codeset: lumbar_spine_imaging
    entries:
      - {system: RIS-VRM, code: LRYGG-DT, text: "DT ländrygg", source: "RIS undersökningskatalog 2026-10",
         checked_by: "A. Andersson, röntgen, 2026-11-20"}
    suggestions:   # written by `lowvalue codes template`; never applied
      - {system: RIS-VRM, code: LRYGG-DT, events: 41, why: "frequent procedure code that no code set has"}

Entries are only ever *added* to a code set: an overlay cannot remove a code
the library lists. Every entry says where it comes from and who checked it,
because a local code is a fact about the region, not about the rule. The
overlay's digest goes into a scan's manifest next to the library's, and the
scan keeps a copy of the overlay in its results folder (``region-codes/``), beside the copy of the library
(``rules/``), so the risk layer, the report and the review app read the same rules and codes.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lowvalue.errors import RuleError
from lowvalue.rules.codes import CodeEntry
from lowvalue.rules.library import RuleSet, load_yaml, pydantic_errors

SNAPSHOT = "region-codes"
"""The folder inside a results folder that holds the overlay a scan used."""


class OverlayEntry(BaseModel):
    """One regional code: what it is, where it is written down, and who checked that it belongs in the code set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    text: str = Field(min_length=1)
    source: str = Field(min_length=1)
    checked_by: str = Field(min_length=1)
    checked: date | None = None

    @field_validator("code", "system", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return str(v).strip() if isinstance(v, (str, int, float)) else v


class Suggestion(BaseModel):
    """A candidate code listed by ``codes template``: read by people, never applied."""

    model_config = ConfigDict(extra="allow", frozen=True)

    system: str
    code: str


class OverlayFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    codeset: str
    region: str | None = None
    note: str | None = None
    entries: list[OverlayEntry] = Field(default_factory=list)
    suggestions: list[Suggestion] = Field(default_factory=list)


@dataclass(frozen=True)
class Overlay:
    """The entries of an overlay folder, per code set, with the folder's digest."""

    path: str
    digest: str
    entries: dict[str, tuple[OverlayEntry, ...]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.entries.values())

    def manifest(self) -> dict[str, Any]:
        """What a scan records about the overlay it used."""
        return {"digest": self.digest, "path": self.path, "entries": self.size,
                "codesets": {k: len(v) for k, v in sorted(self.entries.items())}}


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.y*ml") if p.is_file())


def digest_of(root: Path) -> str:
    """SHA-256 over the overlay's YAML files (relative path and bytes), in path order."""
    h = hashlib.sha256()
    for p in _files(root):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def load_overlay(root: Path | str, *, collect: list[RuleError] | None = None) -> Overlay:
    """Read an overlay folder; problems are raised (first one) or appended to ``collect``."""
    root = Path(root)
    if not root.is_dir():
        raise RuleError(str(root), "code overlay folder not found (make one with `lowvalue codes template DATA --out DIR`)")
    problems: list[RuleError] = []
    entries: dict[str, list[OverlayEntry]] = {}
    files: dict[str, str] = {}
    for path in _files(root):
        try:
            text = path.read_text(encoding="utf-8")
            try:
                f = OverlayFile.model_validate(load_yaml(text, str(path)))
            except ValidationError as err:
                problems += pydantic_errors(err, str(path), text)
                continue
            if f.codeset in files:
                problems.append(RuleError(str(path), f"code set {f.codeset!r} is extended twice (also in {files[f.codeset]})"))
                continue
            files[f.codeset] = str(path)
            entries[f.codeset] = list(f.entries)
        except RuleError as err:
            problems.append(err)
    if collect is not None:
        collect.extend(problems)
    elif problems:
        raise problems[0]
    return Overlay(path=str(root), digest=digest_of(root), entries={k: tuple(v) for k, v in entries.items()}, files=files)


def apply_overlay(rs: RuleSet, overlay: Overlay) -> RuleSet:
    """A copy of ``rs`` whose code sets include the overlay's entries; unknown code sets raise."""
    valuesets = dict(rs.valuesets)
    for name, items in overlay.entries.items():
        if name not in valuesets:
            raise RuleError(overlay.files.get(name, overlay.path), f"unknown code set {name!r}: see `lowvalue rules list`")
        vs = valuesets[name]
        codes = {s: list(e) for s, e in vs.codes.items()}
        for item in items:
            try:
                entry = CodeEntry.parse(item.system, item.code)
            except ValueError as err:
                raise RuleError(overlay.files[name], f"{item.system} {item.code!r}: {err}") from None
            if entry not in codes.setdefault(item.system, []):
                codes[item.system].append(entry)
        valuesets[name] = replace(vs, codes={s: tuple(e) for s, e in codes.items()}, regional=items)
    return replace(rs, valuesets=valuesets, overlay=overlay)


def load_rules(rules_dir: Path | str | None = None, codes_dir: Path | str | None = None) -> RuleSet:
    """The library (default: the shipped one) with a region's code overlay applied, if one is given."""
    from lowvalue.rules.library import load_library

    rs = load_library(rules_dir)
    return apply_overlay(rs, load_overlay(codes_dir)) if codes_dir else rs


def lint_overlay(root: Path | str, rs: RuleSet) -> tuple[Overlay | None, list[RuleError]]:
    """Schema, known code-set names, code formats, duplicates, and entries the library already has."""
    from lowvalue.rules.lint import code_ok

    problems: list[RuleError] = []
    try:
        overlay = load_overlay(root, collect=problems)
    except RuleError as err:
        return None, [err]
    for name, items in overlay.entries.items():
        file = overlay.files[name]
        if name not in rs.valuesets:
            problems.append(RuleError(file, f"unknown code set {name!r}: see `lowvalue rules list`"))
            continue
        seen: set[tuple[str, str]] = set()
        for i, item in enumerate(items):
            where = f"entries.{i} ({item.system} {item.code})"
            try:
                entry = CodeEntry.parse(item.system, item.code)
            except ValueError as err:
                problems.append(RuleError(file, f"{where}: {err}"))
                continue
            if not code_ok(item.system, item.code):
                problems.append(RuleError(file, f"{where}: not a well-formed {item.system} code"))
            if (item.system, entry.low + entry.high) in seen:
                problems.append(RuleError(file, f"{where}: listed twice"))
            seen.add((item.system, entry.low + entry.high))
            if entry in rs.valuesets[name].codes.get(item.system, ()):
                problems.append(RuleError(file, f"{where}: already in the library's code set; remove it from the overlay"))
    return overlay, problems


def snapshot(overlay: Overlay, results: Path) -> None:
    """Copy the overlay's files into ``results/region-codes/`` (same relative paths, so the digest is the same)."""
    src, dst = Path(overlay.path), results / SNAPSHOT
    if dst.exists():
        shutil.rmtree(dst)
    for p in _files(src):
        target = dst / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, target)


def rules_for_results(results: Path | str, manifest: dict[str, Any] | None = None, *,
                      library: Path | str | None = None) -> RuleSet:
    """The rules a results folder was scanned with: the library copy the scan kept (``results/rules/``) plus the
    overlay snapshot it kept (``results/region-codes/``).

    A copy whose digest differs from the manifest's is refused (the folder was changed after the scan), and so is a
    ``library`` folder that holds another library than the copy: a later command cannot swap the rules under its
    results. Results from before the copy was kept are read with ``library`` (default the shipped one), refused when
    its digest differs from the manifest's.
    """
    import json

    from lowvalue.rules.library import SNAPSHOT as LIBRARY_SNAPSHOT, library_digest, load_library

    results = Path(results)
    if manifest is None:
        f = results / "manifest.json"
        manifest = json.loads(f.read_text()) if f.is_file() else {}
    recorded = (manifest.get("rule_set") or {}).get("codes_overlay")
    scanned = (manifest.get("rule_set") or {}).get("digest")
    kept = results / LIBRARY_SNAPSHOT
    if kept.is_dir():
        rs = load_library(kept)
        if scanned and rs.digest != scanned:
            raise RuleError(str(kept), "the rule library kept with these results was changed after the scan; scan again")
        if library is not None and library_digest(library) != rs.digest:
            raise RuleError(str(library), f"is not the rule library these results were scanned with (kept in {kept}); "
                                          "leave out --rules, or scan again with it")
    else:
        rs = load_library(library)
        if scanned and rs.digest != scanned:
            raise RuleError(str(library or rs.root), f"is not the rule library the results in {results} were scanned "
                                                     "with, and they keep no copy of theirs: give that library with "
                                                     "--rules, or scan again")
    if not recorded:
        return rs
    snap = results / SNAPSHOT
    if not snap.is_dir() or digest_of(snap) != recorded["digest"]:
        raise RuleError(str(snap), "the code overlay kept with these results is missing or was changed after the scan; "
                                   "scan again with --codes")
    return apply_overlay(rs, load_overlay(snap))


def dump_yaml(data: dict[str, Any]) -> str:
    """YAML as people write it: keys in the given order, one flow mapping per list item, UTF-8 text."""

    class _Dumper(yaml.SafeDumper):
        pass

    def _flow_item(dumper: yaml.SafeDumper, value: dict[str, Any]) -> yaml.Node:
        return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=True)

    _Dumper.add_representer(_FlowDict, _flow_item)
    out = {k: [_FlowDict(x) for x in v] if isinstance(v, list) and v and isinstance(v[0], dict) else v
           for k, v in data.items()}
    return yaml.dump(out, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


class _FlowDict(dict):  # type: ignore[type-arg]
    """A list item written on one line."""


SUGGESTIONS_PER_SYSTEM = 20
"""Frequent unmatched codes listed per coding system: a hint, never a substitute for the region's catalogue."""


def write_template(cov: Any, rules: list[Any], out: Path | str) -> list[Path]:
    """Write a starting overlay: one file per code set a rule uses that matches nothing in this extract.

    ``cov`` is a :class:`lowvalue.engine.coverage.Coverage` of the extract. Each file names the rules that use the
    code set and in what role (an index or a requirement that matches nothing makes its rule not evaluable), has an
    empty ``entries`` list for the analyst, and ``suggestions``: the frequent codes of the right kind that no code set
    holds in a coding system the set has no codes in (a local catalogue), and codes that share a category or group
    with the set's own codes. Nothing is filled in automatically:
    a code belongs in a code set only when somebody who knows the region's catalogue says so.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise RuleError(str(out), "exists and is not empty; give a new folder (an overlay is never overwritten)")
    uses: dict[tuple[str, str], list[str]] = {}
    refs: dict[tuple[str, str], Any] = {}
    for rule in rules:
        for condition, role, kind, ref in rule.code_uses():
            key = (cov.rs.valueset(ref).name, kind)
            if key[0].startswith("inline:") or kind == "encounter":
                continue
            refs[key] = ref
            uses.setdefault(key, []).append(f"{rule.id} {'index' if role == 'index' else f'{role} {condition}'}")
    empty = [k for k in sorted(uses) if not any(c.events_matched for c in cov.of_set(refs[k], k[1]).values())]
    orphans = cov.orphans(rules)
    unclaimed = cov.unclaimed(rules, SUGGESTIONS_PER_SYSTEM)
    written = []
    out.mkdir(parents=True, exist_ok=True)
    for name in sorted({n for n, _ in empty}):
        vs = cov.rs.valuesets[name]
        kinds = [k for n, k in empty if n == name]
        sugg: list[dict[str, Any]] = []
        for kind in kinds:
            related = orphans[(orphans.codeset == name) & (orphans.kind == kind) & orphans.system.isin(list(vs.codes))]
            sugg += [{"system": r.system, "code": r.code, "events": int(r.events), "why": r.relation}
                     for r in related.itertuples()]
            foreign = [s for s in cov.systems_used(kind) if s not in vs.codes]  # e.g. a local RIS or lab catalogue
            sugg += [{"system": r.system, "code": r.code, "events": int(r.events),
                      "why": f"frequent {kind} code in {r.system}, a system the code set has no codes in; "
                             "no code set holds it"}
                     for r in unclaimed[(unclaimed.kind == kind) & unclaimed.system.isin(foreign)].itertuples()]
        used_by = [u for k in kinds for u in uses[(name, k)]]
        data = {
            "codeset": name,
            "note": (f"{vs.title or name}. Used by: {'; '.join(used_by)}. Matches no {' or '.join(kinds)} event of this "
                     f"extract. Move the codes that mean this into 'entries' with text, source and checked_by; "
                     f"'suggestions' are never applied."),
            "entries": [],
            "suggestions": sugg,
        }
        path = out / f"{name}.yaml"
        path.write_text(dump_yaml(data), encoding="utf-8")
        written.append(path)
    return written
