"""Results remember their rules: a region's own rule (a shipped one renamed in a copied library) flows from `scan`
through the report and the review case page without `--rules` again, and a later `--rules` naming another library is
refused with one line."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from lowvalue.cli import main
from lowvalue.errors import RuleError
from lowvalue.rules.library import DEFAULT_LIBRARY, SNAPSHOT, library_digest
from lowvalue.shipped import shipped

EXAMPLE = shipped("examples/synthetic_data")
LOCAL_ID, LOCAL_TITLE = "LV-LOCAL-901", "Ländryggsbilder, regionens egen variant"


PASSWORD = "correct-horse-battery"


def _review_db(results: Path, tmp_path: Path) -> Path:
    db = tmp_path / "review.sqlite"
    _cli("review", "init", str(results), "--db", str(db))
    _cli("review", "add-user", "anna", "--db", str(db), env={"LOWVALUE_REVIEW_PASSWORD": PASSWORD})
    return db


def _cli(*args: str, env: dict[str, str] | None = None) -> str:
    r = CliRunner().invoke(main, list(args), env=env)
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copied library with LV-IMG-001 renamed (id and titles), and the bundled region scanned with it."""
    base = tmp_path_factory.mktemp("local")
    lib = base / "local-rules"
    shutil.copytree(DEFAULT_LIBRARY, lib)
    text = (lib / "LV-IMG-001.yaml").read_text(encoding="utf-8")
    (lib / "LV-IMG-001.yaml").unlink()
    text = text.replace("id: LV-IMG-001", f"id: {LOCAL_ID}")
    text = text.replace("  sv: Bilddiagnostik av ländryggen vid ospecifik ländryggssmärta inom sex veckor",
                        f"  sv: {LOCAL_TITLE}")
    text = text.replace("  en: Imaging of the lumbar spine for non-specific low back pain within six weeks",
                        f"  en: {LOCAL_TITLE} (en)")
    (lib / f"{LOCAL_ID}.yaml").write_text(text, encoding="utf-8")
    results = base / "results"
    _cli("scan", str(EXAMPLE), "--rules", str(lib), "--codes", str(EXAMPLE / "region-codes"), "--out", str(results),
         "--only", LOCAL_ID, "--only", "LV-RX-022")
    return lib, results


def test_the_scan_keeps_its_library(local: tuple[Path, Path]) -> None:
    lib, results = local
    assert library_digest(results / SNAPSHOT) == library_digest(lib)
    assert (results / SNAPSHOT / f"{LOCAL_ID}.yaml").is_file()
    assert (pd.read_parquet(results / "flags.parquet").rule_id == LOCAL_ID).sum() > 0


def test_a_local_rule_reaches_the_report_and_the_case_page(local: tuple[Path, Path], tmp_path: Path) -> None:
    from lowvalue.review.app import create_app

    _, results = local
    _cli("report", str(results), "--out", str(tmp_path / "report.html"), "--lang", "sv")
    assert LOCAL_TITLE in (tmp_path / "report.html").read_text(encoding="utf-8")
    client = create_app(_review_db(results, tmp_path), results).test_client()  # no rules given: the scan's own
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    client.post("/login", data={"username": "anna", "password": PASSWORD, "csrf": token})
    flag = pd.read_parquet(results / "flags.parquet").query("rule_id == @LOCAL_ID").flag_id.iloc[0]
    page = client.get(f"/case/{flag}")
    assert page.status_code == 200
    assert LOCAL_TITLE in page.get_data(as_text=True)


def test_another_library_given_later_is_refused(local: tuple[Path, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from werkzeug.serving import BaseWSGIServer

    from lowvalue.risk.results import load_results

    def stop(self: BaseWSGIServer) -> None:  # were the check to fail, the test must not serve forever
        raise KeyboardInterrupt

    monkeypatch.setattr(BaseWSGIServer, "serve_forever", stop)
    lib, results = local
    r = CliRunner().invoke(main, ["review", "serve", "--db", str(_review_db(results, tmp_path)), "--results",
                                  str(results), "--rules", str(DEFAULT_LIBRARY), "--port", "18765"])
    assert r.exit_code == 2 and "is not the rule library these results were scanned with" in r.output
    assert len(r.output.strip().splitlines()) == 1
    with pytest.raises(RuleError, match="is not the rule library these results were scanned with"):
        load_results(results, rules=DEFAULT_LIBRARY)
    assert load_results(results, rules=lib).rules.rules[LOCAL_ID].title.sv == LOCAL_TITLE  # the same library: fine


def test_a_changed_copy_is_refused(local: tuple[Path, Path], tmp_path: Path) -> None:
    from lowvalue.rules.overlay import rules_for_results

    _, results = local
    changed = Path(shutil.copytree(results, tmp_path / "results"))
    f = changed / SNAPSHOT / f"{LOCAL_ID}.yaml"
    f.write_text(f.read_text(encoding="utf-8").replace(LOCAL_TITLE, "edited later"), encoding="utf-8")
    with pytest.raises(RuleError, match="changed after the scan"):
        rules_for_results(changed)
