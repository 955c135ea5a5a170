"""Fixtures for the review app: the bundled example scanned once, a fresh review database per test, a logged-in client.

The scan (about 6 s) and the rule library are session-scoped; a database is
cheap (a thousand rows), so each test gets its own and cannot see another's verdicts.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest


ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "synthetic-region-100k"
USER, PASSWORD = "anna", "correct-horse-battery"


@pytest.fixture(scope="session")
def results(example_results: Path) -> Path:
    return example_results


@pytest.fixture(scope="session")
def ruleset() -> Any:
    from lowvalue.rules.library import load_library

    return load_library()


def copy_results(results: Path, dest: Path) -> Path:
    """A private copy of the session results, for tests that write into the folder."""
    shutil.copytree(results, dest)
    return dest


@pytest.fixture(scope="session")
def template_db(results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the example's flags and two reviewers, built once (password hashing is slow on purpose)."""
    from lowvalue.review.store import Store

    path = tmp_path_factory.mktemp("review_db") / "review.sqlite"
    with Store.open(path, create=True) as st:
        st.load_results(results)
        st.add_user(USER, PASSWORD)
        st.add_user("bertil", "another-long-password")
    return path


@pytest.fixture()
def db(template_db: Path, tmp_path: Path) -> Path:
    """A private copy of the template database."""
    return Path(shutil.copy2(template_db, tmp_path / "review.sqlite"))


@pytest.fixture()
def app(db: Path, results: Path, ruleset: Any) -> Any:
    from lowvalue.review.app import create_app

    a = create_app(db, results, rules=ruleset)
    a.testing = True
    return a


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def login(client: Any, user: str = USER, password: str = PASSWORD) -> Any:
    token = csrf_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": user, "password": password, "csrf": token})


@pytest.fixture()
def client(app: Any) -> Any:
    c = app.test_client()
    r = login(c)
    assert r.status_code == 302 and r.location.endswith("/"), r.get_data(as_text=True)
    return c
