# Two entry points for a new user: `make demo` and `make test`.
# Both build their own virtual environment in .venv; nothing else is assumed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv clean docs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/lowvalue demo --out demo-output

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo-output

docs: $(STAMP)
	{ printf '# Rule catalogue\n\nGenerated from the YAML in `rules/` by `lowvalue rules list --format markdown`; do not edit by hand. "codes" counts the codes of the rule'"'"'s code sets that are marked unverified (not yet checked against an official source).\n\n'; $(BIN)/lowvalue rules list --format markdown; } > docs/rules.md
