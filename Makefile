# tgraph: `make demo` and `make test` set everything up from a bare Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DGLBACKEND := pytorch

.PHONY: install demo test test-fast lint typecheck docs docs-build clean

$(STAMP): setup.cfg pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e ".[dev,notebooks,postgres,serve,tensorboard,docs]"
	$(BIN)/pip check
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python experiments/run.py --config demo

lint: $(STAMP)
	$(BIN)/ruff check tgraph experiments tests docs/hooks
	$(BIN)/ruff format --check tgraph experiments tests docs/hooks

# --strict: a broken link, a missing page or an unresolved API reference fails the build.
# NO_MKDOCS_2_WARNING: Material's banner about MkDocs 2 on every build (advice, not a problem).
docs-build: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

typecheck: $(STAMP)
	$(BIN)/mypy

# every tier: unit, slow, real data (../shared/data or $$TGRAPH_DATA), performance
test: lint typecheck docs-build
	$(BIN)/python -m pytest -q

# the fast tier (about a minute): no slow, real-data or performance tests
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not real_data and not performance"

clean:
	rm -rf $(VENV) runs site .pytest_cache .mypy_cache
