# Two entry points for a new user: `make demo` and `make test`.
# Both build their own virtual environment in .venv; nothing else is assumed.
# `make demo` installs only what the demo uses (the default install); `make test` adds the test tools, Spark and the SQL export drivers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
# Test workers (pytest-xdist); a file's tests stay on one worker (--dist loadfile), see tests/conftest.py.
WORKERS ?= 2

.PHONY: demo test test-fast venv clean docs wheel

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml setup.py | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,spark,sql]'
	touch $@ $(DEMO_STAMP)

venv: $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/lowvalue demo --out demo-output

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile

# Without the Spark and long property tests (marked `slow`): a quick check while editing.
test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile -m "not slow"

wheel: $(TEST_STAMP)
	$(BIN)/pip wheel --no-deps --no-build-isolation -q -w dist .

clean:
	rm -rf $(VENV) demo-output build dist

docs: $(DEMO_STAMP)
	{ printf '# Rule catalogue\n\nGenerated from the YAML in `rules/` by `lowvalue rules list --format markdown`; do not edit by hand. "codes" counts the codes of the rule'"'"'s code sets that are marked unverified (not yet checked against an official source).\n\n'; $(BIN)/lowvalue rules list --format markdown; } > docs/rules.md
