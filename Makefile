# tgraph: `make demo` and `make test` set everything up from a bare Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DGLBACKEND := pytorch

.PHONY: install demo test lint docs docs-build clean

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

test: lint docs-build
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs site .pytest_cache
