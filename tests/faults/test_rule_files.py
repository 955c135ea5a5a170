"""Rule, code-set and overlay files are safe to load: no alias bombs, bounded size and depth, located errors."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lowvalue.cli import main
from lowvalue.rules.library import DEFAULT_LIBRARY

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9))


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    lib = tmp_path / "rules"
    shutil.copytree(DEFAULT_LIBRARY, lib)
    return lib


def _lint(lib: Path):
    return CliRunner().invoke(main, ["rules", "lint", "--rules", str(lib)])


def test_an_alias_bomb_in_a_code_set_is_refused_at_once(library: Path) -> None:
    (library / "valuesets" / "bomb.yaml").write_text("name: bomb\ncodes:\n  ICD-10-SE: [A00]\n" + BOMB)
    t0 = time.monotonic()
    res = _lint(library)
    assert time.monotonic() - t0 < 10
    assert res.exit_code == 2 and "bomb.yaml:4:4: YAML anchors and aliases" in res.output, res.output
    assert "Traceback" not in res.output


def test_deep_nesting_and_huge_files_are_refused(library: Path) -> None:
    (library / "valuesets" / "deep.yaml").write_text("name: deep\ncodes: {ICD-10-SE: [A00]}\nx: " + "[" * 40 + "]" * 40)
    res = _lint(library)
    assert res.exit_code == 2 and "deep.yaml:3" in res.output and "nested deeper than 32 levels" in res.output
    (library / "valuesets" / "deep.yaml").write_text("name: deep\ncodes: {ICD-10-SE: [A00]}\n# " + "x" * 1_100_000)
    assert "larger than 1,000,000 bytes" in _lint(library).output


def test_a_code_that_is_not_a_plain_value_is_refused_with_its_line(library: Path) -> None:
    (library / "valuesets" / "odd.yaml").write_text("name: odd\ncodes:\n  ICD-10-SE:\n    - A00\n    - {x: 1}\n")
    res = _lint(library)
    assert res.exit_code == 2 and "odd.yaml:4:5: codes.ICD-10-SE: a list of codes" in res.output, res.output


def test_a_missing_code_set_names_the_rule_and_its_file(library: Path) -> None:
    (library / "valuesets" / "haemoglobin.yaml").unlink()
    example = DEFAULT_LIBRARY.parent / "examples" / "synthetic_data"
    res = CliRunner().invoke(main, ["scan", str(example), "--rules", str(library), "--out", str(library.parent / "r")])
    assert res.exit_code == 2 and "LV-HOSP-027.yaml" in res.output and "unknown code set 'haemoglobin'" in res.output
    assert "LV-HOSP-027 hb_at_least_70" in res.output and "Traceback" not in res.output


def test_an_overlay_with_aliases_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "codes").mkdir()
    (tmp_path / "codes" / "x.yaml").write_text("codeset: chest_xray\nentries: []\n" + BOMB)
    res = CliRunner().invoke(main, ["codes", "lint", str(tmp_path / "codes")])
    assert res.exit_code == 2 and "YAML anchors and aliases" in res.output
