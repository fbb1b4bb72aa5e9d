# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# one venv, two installs, in either order: the demo's (itbproto and the emulator extra, for the plot) and the
# developers' (.[dev]: the tools, every extra); the developers' includes the demo's
DEMO_STAMP := $(VENV)/.installed-demo
STAMP      := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest docs docs-build qa bench specs mutation clinical-mutants qa-mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[emulator]'
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(DEMO_STAMP)

# the emulator on TCP, a clinical session against it through the bytes, its event log, years simulated into a plot
demo: $(DEMO_STAMP)
	$(BIN)/itbemu demo --out demo-out

test: lint typecheck docs-build pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench docs $(wildcard emulator examples/*.py)
	$(BIN)/ruff format --check src tests bench docs $(wildcard emulator examples/*.py)
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy src tests bench docs $(wildcard emulator examples/*.py)

pytest: $(STAMP)
	$(BIN)/pytest

# the reference site (mkdocs.yml, docs/): served with live reload while you edit; built with --strict by `make test`
# (NO_MKDOCS_2_WARNING: the theme's notice of its end of life, printed on every build, says nothing about ours)
DOCS_ENV := NO_MKDOCS_2_WARNING=1
docs: $(STAMP)
	$(DOCS_ENV) $(BIN)/mkdocs serve

docs-build: $(STAMP)
	$(DOCS_ENV) $(BIN)/mkdocs build --strict --site-dir .site

bench: $(STAMP)
	$(BIN)/python bench/bench_codec.py
	$(BIN)/python bench/bench_simulate.py
	$(BIN)/python bench/bench_crash.py
	$(BIN)/python bench/bench_client.py
	$(BIN)/python bench/bench_ble.py
	$(BIN)/python bench/bench_qa.py

# the packaged QA safety suite against the in-process emulator (QA point it at tcp:// or ble:// targets)
qa: $(STAMP)
	$(BIN)/pytest --pyargs itbproto.qa --itb-target=inproc --itb-profile=thorough

specs: $(STAMP)
	$(BIN)/itbproto specs --write
	ITB_WRITE_RULE_TABLES=1 $(BIN)/pytest -q tests/test_rule_tables_doc.py

# mutation testing of safety/, therapy/ and machines/ (not part of `make test`: about an hour on 2 cores)
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[mutation]'
	HYPOTHESIS_PROFILE=mutation $(BIN)/mutmut run
	$(BIN)/python bench/mutation_score.py

# hand-written clinical mutants (bench/clinical_mutants.toml) against the focused tests
clinical-mutants: $(STAMP)
	$(BIN)/python bench/clinical_mutants.py

# the QA safety suite as a test of pumps: a seeded sample of mutmut's mutants of the pump side (300, seed 23;
# about 20 minutes on 2 cores): `bench/qa_mutation.py --help`
qa-mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[mutation]'
	$(BIN)/python bench/qa_mutation.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis mutants demo-out .site
