# Quick start: `make demo` runs the main job; `make test` runs every test.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test bench

# Quiet unless something fails: pip's output goes to .venv/install.log, shown on error.
$(BIN)/csv-merger: pyproject.toml
	@echo "setting up $(VENV) (about 2 minutes on first run)"
	@$(PY) -m venv $(VENV)
	@{ $(BIN)/pip install --upgrade pip && $(BIN)/pip install -e ".[test]"; } > $(VENV)/install.log 2>&1 \
		|| { cat $(VENV)/install.log; echo "setup failed: see $(VENV)/install.log"; exit 1; }
	@touch $@

setup: $(BIN)/csv-merger

demo: setup
	$(BIN)/csv-merger demo

test: setup
	$(BIN)/python -m pytest -q -rs --durations=20 -p no:cacheprovider

bench: setup
	$(BIN)/python bench/merge.py
	$(BIN)/python bench/deliver.py
	$(BIN)/python bench/adaptive.py
	$(BIN)/python bench/e2e.py
