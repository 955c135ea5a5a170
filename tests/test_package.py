"""The built wheel is self-contained: installed in a fresh virtual environment outside the checkout, it lists the
rules, scans the bundled example region and writes a report, with the working directory outside the checkout too.

To stay fast and offline, the wheel is built without build isolation (setuptools from the current environment), the
fresh venv has no pip of its own (the current pip installs into it with ``--python``), the wheel is installed with
``--no-deps``, and the venv reaches the dependencies through a ``.pth`` file naming the current environment's
site-packages (written after the install, so pip does not take the current environment's ``lowvalue`` for
an installed one). That ``.pth`` adds the folder to ``sys.path`` after the venv's own site-packages, and ``.pth`` files
inside it are not processed, so the editable install of the checkout cannot be what runs: the test checks that
``lowvalue`` is imported from the venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the source tree (a build writes build/ and *.egg-info beside the sources)."""
    src = tmp_path_factory.mktemp("src") / "lowvalue"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "tests",
                                                             "__pycache__", ".hypothesis", ".pytest_cache", "demo-output"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("lowvalue-*.whl")
    return whl


def test_wheel_carries_the_shipped_folders(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("lowvalue/_shipped/rules/LV-IMG-001.yaml", "lowvalue/_shipped/rules/triggers/",
              "lowvalue/_shipped/rules/valuesets/", "lowvalue/_shipped/examples/synthetic_data/events.parquet",
              "lowvalue/_shipped/examples/synthetic_data/region-codes/", "lowvalue/_shipped/examples/synthetic_data/truth/",
              "lowvalue/_shipped/models/synthetic-region-100k/model.json", "lowvalue/data/adapters/mappings/units.csv",
              "lowvalue/report/templates/report.html.j2", "lowvalue/review/templates/case.html.j2"):
        assert any(n.startswith(f) for n in names), f
    in_git = {p.relative_to(ROOT / "rules").as_posix() for p in (ROOT / "rules").rglob("*.yaml")}
    shipped = {n.removeprefix("lowvalue/_shipped/rules/") for n in names
               if n.startswith("lowvalue/_shipped/rules/") and n.endswith(".yaml")}
    assert shipped == in_git


def test_wheel_runs_in_a_fresh_venv_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300, env=env)
    # only now: pip must not see the current environment's lowvalue (an editable install) as already installed
    (site / "current_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(py), "-c", "import lowvalue; print(lowvalue.__file__)"], work, env)
    assert Path(where.strip()).is_relative_to(venv), where
    lv = str(venv / "bin" / "lowvalue")
    assert "lowvalue, version" in _run([lv, "--version"], work, env)
    assert "LV-IMG-001" in _run([lv, "rules", "list"], work, env)
    example = _run([str(py), "-c", "from lowvalue.shipped import shipped; print(shipped('examples/synthetic_data'))"],
                   work, env).strip()
    assert Path(example).is_relative_to(venv), example
    out = _run([lv, "scan", example, "--codes", f"{example}/region-codes", "--out", "results"], work, env)
    assert "wrote results/" in out
    _run([lv, "report", "results", "--out", "report.html", "--lang", "en"], work, env)
    assert (work / "report.html").stat().st_size > 10_000
    assert (work / "results" / "rules" / "LV-IMG-001.yaml").is_file()  # the scan kept its rule set
