# Quick start: `make demo` runs the main job; `make test` runs every test.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench

$(BIN)/csv-merger: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	@touch $@

setup: $(BIN)/csv-merger

demo: setup
	$(BIN)/csv-merger demo

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: setup
	$(BIN)/python bench/merge.py
	$(BIN)/python bench/deliver.py
	$(BIN)/python bench/e2e.py
