"""Loading a rule library from disk: rules, triggers and code sets, with located errors.

Layout of a library folder (the shipped one is ``rules/`` at the top of the repo, package data when installed)::

    rules/*.yaml            one do-not-do rule a file
    rules/triggers/*.yaml   one adverse-event trigger a file
    rules/valuesets/*.yaml  one named code set a file

Every problem found while loading is collected, not raised at the first one, and
reported with file, line and column (as YAML editors count them), so an author
fixes a file in one pass.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lowvalue.errors import RuleError
from lowvalue.rules.codes import CodeEntry, Units, ValueSet
from lowvalue.rules.model import CodeRef, Rule
from lowvalue.shipped import shipped

DEFAULT_LIBRARY = shipped("rules")
"""The shipped library: the repository's ``rules/``, package data in an installed wheel (:mod:`lowvalue.shipped`)."""


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it (about ten times faster), else the pure-Python one."""


MAX_BYTES = 1_000_000
MAX_DEPTH = 32
"""Limits for a rule, trigger, code-set or overlay file: the largest shipped file is a few kB and 6 levels deep."""


def _check_shape(text: str, file: str) -> None:
    """Refuse what a rule file never needs and what could hang a loader: anchors and aliases (a few kB of nested
    aliases expand to gigabytes), deep nesting, very large files. Tokens are scanned without building anything."""
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise RuleError(file, f"larger than {MAX_BYTES:,} bytes: a rule or code-set file is a few kB")
    depth = 0
    for tok in yaml.scan(text, Loader=_LOADER):
        if isinstance(tok, (yaml.AnchorToken, yaml.AliasToken)):
            m = tok.start_mark
            raise RuleError(file, "YAML anchors and aliases (& and *) are not allowed in rule files: write the value out",
                            line=m.line + 1, column=m.column + 1)
        if isinstance(tok, (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken, yaml.FlowMappingStartToken,
                            yaml.FlowSequenceStartToken)):
            depth += 1
            if depth > MAX_DEPTH:
                m = tok.start_mark
                raise RuleError(file, f"nested deeper than {MAX_DEPTH} levels", line=m.line + 1, column=m.column + 1)
        elif isinstance(tok, (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)):
            depth -= 1


def load_yaml(text: str, file: str) -> Any:
    """Parse YAML text safely (no tags that construct objects, no aliases, bounded size and depth); a problem is a
    located :class:`RuleError`."""
    try:
        _check_shape(text, file)
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise RuleError(file, f"not valid YAML: {getattr(err, 'problem', err)}",
                        line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None) from None


def _locate(node: yaml.Node | None, path: tuple[Any, ...]) -> tuple[int | None, int | None]:
    """Line and column of the deepest YAML node on ``path`` (a pydantic error location)."""
    best = node
    for key in path:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node = best = nxt
    if best is None:
        return None, None
    return best.start_mark.line + 1, best.start_mark.column + 1


def pydantic_errors(err: ValidationError, file: str, text: str) -> list[RuleError]:
    """Each schema error of a YAML file as a :class:`RuleError` with line and column (the file is composed only now)."""
    node = yaml.compose(text, Loader=_LOADER)
    out = []
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p[0].isupper()))
        line, col = _locate(node, loc)
        where = ".".join(str(p) for p in loc) or "(top)"
        msg = e["msg"].removeprefix("Value error, ")
        out.append(RuleError(file, f"{where}: {msg}", line=line, column=col))
    return out


def _load_valueset(path: Path) -> ValueSet:
    data = load_yaml(path.read_text(encoding="utf-8"), str(path))
    if not isinstance(data, dict) or not isinstance(data.get("codes"), dict):
        raise RuleError(str(path), "a code set needs a 'codes' mapping of system -> list of codes")
    name = data.get("name", path.stem)
    codes = {}
    for system, entries in data["codes"].items():
        if entries is not None and not isinstance(entries, list) or any(
                not isinstance(c, (str, int, float)) or isinstance(c, bool) for c in entries or []):
            line, col = _locate(yaml.compose(path.read_text(encoding="utf-8"), Loader=_LOADER), ("codes", system))
            raise RuleError(str(path), f"codes.{system}: a list of codes (text) is needed, each one a plain value",
                            line=line, column=col)
        try:
            codes[str(system)] = tuple(CodeEntry.parse(str(system), str(c)) for c in entries or [])
        except ValueError as err:
            raise RuleError(str(path), f"codes.{system}: {err}") from None
    units = data.get("units")
    return ValueSet(
        name=name,
        codes=codes,
        units=Units(units["canonical"], dict(units.get("factors", {}))) if units else None,
        title=str(data.get("title", "")),
        provenance=str(data.get("provenance", "")),
        unverified=frozenset(str(c) for c in data.get("unverified", []) or []),
        source_file=str(path),
    )


@dataclass
class RuleSet:
    """Rules, triggers and the code sets they name; the unit a scan runs."""

    rules: dict[str, Rule] = field(default_factory=dict)
    valuesets: dict[str, ValueSet] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    digest: str = ""
    overlay: Any = None
    """The region's code overlay applied to the code sets (:class:`lowvalue.rules.overlay.Overlay`), if any."""
    root: Path | None = None
    """The library folder the rules were read from (what :func:`snapshot` copies), if any."""

    @property
    def do_not_do(self) -> list[Rule]:
        return [r for r in self.rules.values() if r.type == "rule"]

    @property
    def triggers(self) -> list[Rule]:
        return [r for r in self.rules.values() if r.type == "trigger"]

    def valueset(self, ref: CodeRef) -> ValueSet:
        """The code set a rule names, or an inline one."""
        if isinstance(ref, dict):
            return ValueSet.inline("inline:" + ",".join(f"{k}={v}" for k, v in sorted(ref.items())), ref)
        try:
            return self.valuesets[ref]
        except KeyError:
            raise RuleError(self.files.get(ref, "rules"), f"unknown code set {ref!r}") from None

    def select(self, only: list[str] | None) -> "RuleSet":
        """A copy holding only the named rules (the triggers they link to, negative controls included, are kept)."""
        if not only:
            return self
        missing = [i for i in only if i not in self.rules]
        if missing:
            raise RuleError("--only", f"unknown rule id(s) {missing}; known: {sorted(self.rules)}")
        keep = set(only) | {t for i in only for t in self.rules[i].linked_triggers()}
        return replace(self, rules={k: v for k, v in self.rules.items() if k in keep})


def rule_digest(rs: RuleSet, rule: Rule) -> str:
    """A digest of what a rule's counts depend on besides the data: its parsed definition and every code set it uses
    as resolved (a region's overlay entries included). A scan's manifest keeps one per rule (``rule_digests``), so a
    rule edited in place, without a version bump, still breaks the report's trends; a comment or layout edit of
    the YAML does not change it."""
    import json

    def codes(ref: CodeRef) -> dict[str, Any]:
        vs = rs.valueset(ref)
        return {"codes": {system: sorted([e.kind, e.low, e.high] for e in entries)
                          for system, entries in sorted(vs.codes.items())},
                "units": repr(vs.units)}

    text = json.dumps({"rule": rule.model_dump(mode="json"), "codes": [codes(ref) for ref in rule.code_refs()]},
                      sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_rule(text: str, file: str = "<string>") -> Rule:
    """Parse one rule from YAML text; raises the first located :class:`RuleError`."""
    data = load_yaml(text, file)
    try:
        return Rule.model_validate(data)
    except ValidationError as err:
        raise pydantic_errors(err, file, text)[0] from None


LIBRARY_FILES = "*.y*ml"
"""The files of a library folder (at any depth): what the digest covers and what a snapshot copies."""

SNAPSHOT = "rules"
"""The folder inside a results folder that holds the rule library a scan used (see :func:`snapshot`)."""


def _library_files(root: Path) -> list[Path]:
    return sorted(root.rglob(LIBRARY_FILES))


def _digest(root: Path, files: list[tuple[Path, bytes]]) -> str:
    h = hashlib.sha256()
    for path, raw in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + raw + b"\0")
    return h.hexdigest()


def library_digest(root: Path | str | None = None) -> str:
    """The digest of a library folder's files (relative paths and bytes), as :func:`load_library` computes it,
    without parsing anything: enough to tell whether two folders hold the same library."""
    root = Path(root) if root else DEFAULT_LIBRARY
    if not root.is_dir():
        raise RuleError(str(root), "rule library folder not found")
    return _digest(root, [(p, p.read_bytes()) for p in _library_files(root)])


def snapshot(rs: RuleSet, results: Path) -> Path | None:
    """Copy the library ``rs`` was read from into ``results/rules/`` (same relative paths and bytes, so the same
    digest): every later command reads the rules through this copy, so a region's own rules travel with their results.

    A rule set built in memory (no ``root``) has nothing to copy.
    """
    if rs.root is None:
        return None
    dst = results / SNAPSHOT
    if dst.exists():
        shutil.rmtree(dst)
    for path in _library_files(rs.root):
        target = dst / path.relative_to(rs.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return dst


_LOADED: dict[str, RuleSet] = {}
"""Libraries loaded in this process, by cache key: a command that reads the rules twice parses them once."""

CACHE_ENV = "LOWVALUE_RULE_CACHE"
"""Set to ``0`` to neither read nor write the on-disk cache of parsed libraries."""


def _cache_key(root: Path, digest: str) -> str:
    """What a parsed library depends on: its files, where they are (messages name them), and the code that parses
    them (this package's rule modules and pydantic), so a changed parser never reads an old cache entry."""
    import pydantic

    from lowvalue import __version__

    where = f"{root}\0{'' if root.is_absolute() else Path.cwd()}"  # paths are kept as given
    h = hashlib.sha256(f"{digest}\0{where}\0{__version__}\0{pydantic.VERSION}".encode())
    for src in sorted(Path(__file__).parent.glob("*.py")):
        h.update(src.read_bytes())
    return h.hexdigest()


def _cache_dir() -> Path | None:
    """The user's own cache folder (``$XDG_CACHE_HOME/lowvalue`` or ``~/.cache/lowvalue``), or None where it cannot
    be trusted: a cache entry is a pickle, so it is read only from a folder that only this user can write."""
    if os.environ.get(CACHE_ENV) == "0" or not hasattr(os, "getuid"):
        return None
    try:
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lowvalue"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.stat()
    except (OSError, RuntimeError):
        return None
    return folder if st.st_uid == os.getuid() and not st.st_mode & 0o022 else None


def _read_cache(key: str) -> RuleSet | None:
    folder = _cache_dir()
    f = folder / f"rules-{key}.pickle" if folder else None
    try:
        if f is None or not f.is_file() or f.stat().st_uid != os.getuid() or f.stat().st_mode & 0o022:
            return None
        rs = pickle.loads(f.read_bytes())  # noqa: S301 - our own file, in a folder only this user can write
    except Exception:  # noqa: BLE001 - a damaged or foreign entry is a cache miss, never an error
        return None
    return rs if isinstance(rs, RuleSet) else None


def _write_cache(key: str, rs: RuleSet) -> None:
    folder = _cache_dir()
    if folder is None:
        return
    tmp = folder / f".rules-{key}.{os.getpid()}.tmp"
    try:
        tmp.write_bytes(pickle.dumps(rs, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, folder / f"rules-{key}.pickle")
    except Exception:  # noqa: BLE001 - a full disk or an unpicklable object: no cache, same result
        tmp.unlink(missing_ok=True)


def load_library(root: Path | str | None = None, *, collect: list[RuleError] | None = None) -> RuleSet:
    """Load every rule, trigger and code set below ``root`` (default: the shipped library).

    With ``collect`` given, problems are appended to it and loading goes on;
    without it the first problem is raised.

    A library without problems is parsed once: kept for the process, and in the user's cache folder keyed by the
    digest of its files (:func:`_cache_key`), so a command starts without parsing a few hundred YAML files again
    (``LOWVALUE_RULE_CACHE=0`` turns the on-disk cache off).
    """
    root = Path(root) if root else DEFAULT_LIBRARY
    if not root.is_dir():
        raise RuleError(str(root), "rule library folder not found")
    files = [(p, p.read_bytes()) for p in _library_files(root)]
    digest = _digest(root, files)
    key = _cache_key(root, digest)
    rs = _LOADED.get(key) or _read_cache(key)
    if rs is None:
        rs, problems = _parse_library(root, files, digest)
        if collect is not None:
            collect.extend(problems)
        elif problems:
            raise problems[0]
        if problems:
            return rs
        _write_cache(key, rs)
    _LOADED[key] = rs
    return replace(rs, rules=dict(rs.rules), valuesets=dict(rs.valuesets), files=dict(rs.files))


def _parse_library(root: Path, files: list[tuple[Path, bytes]], digest: str) -> tuple[RuleSet, list[RuleError]]:
    problems: list[RuleError] = []
    rs = RuleSet(root=root, digest=digest)
    for path, raw in files:
        try:
            if path.parent.name == "valuesets":
                vs = _load_valueset(path)
                rs.valuesets[vs.name] = vs
                rs.files[vs.name] = str(path)
                continue
            text = raw.decode("utf-8")
            data = load_yaml(text, str(path))
            try:
                rule = Rule.model_validate(data)
            except ValidationError as err:
                problems += pydantic_errors(err, str(path), text)
                continue
            if path.parent.name == "triggers" and rule.type != "trigger":
                problems.append(RuleError(str(path), "files in triggers/ must say 'type: trigger'"))
            if rule.id in rs.rules:
                problems.append(RuleError(str(path), f"duplicate rule id {rule.id!r} (also in {rs.files[rule.id]})"))
            rs.rules[rule.id] = rule
            rs.files[rule.id] = str(path)
        except RuleError as err:
            problems.append(err)
    for rule in rs.rules.values():  # a missing code set is the rule's problem: name the rule and its file
        for condition, _, _, ref in rule.code_uses():
            if isinstance(ref, str) and ref not in rs.valuesets:
                problems.append(RuleError(rs.files[rule.id], f"{rule.id} {condition}: unknown code set {ref!r}"))
    return rs, problems
