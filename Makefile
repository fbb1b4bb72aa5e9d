# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench specs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/itbproto demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench $(wildcard emulator examples)
	$(BIN)/ruff format --check src tests bench $(wildcard emulator examples)

typecheck: $(STAMP)
	$(BIN)/mypy src tests bench $(wildcard emulator examples)

pytest: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/bench_codec.py

specs: $(STAMP)
	$(BIN)/itbproto specs --write

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
