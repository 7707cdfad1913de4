# headwater: the two commands are `make demo` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit lint format jars stack-up stack-down bench bench-cluster clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

jars: $(STAMP)            ## fetch the JVM jars with mvn into .headwater/cache (a second run downloads nothing)
	$(BIN)/headwater stack fetch

demo: jars                ## the main job: the example pipeline on the embedded stack, end to end
	$(BIN)/python examples/demo.py

test: jars                ## the whole suite; it starts and stops its own stack
	$(BIN)/pytest

unit: $(STAMP)            ## unit tests only (no JVM, seconds)
	$(BIN)/pytest -m "not spark and not integration and not e2e and not cluster and not package"

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports        # the layers: imports flow one way (pyproject.toml [tool.importlinter])

format: $(STAMP)
	$(BIN)/ruff format src tests examples benchmarks
	$(BIN)/ruff check --fix src tests examples benchmarks

stack-up: jars
	$(BIN)/headwater stack up

stack-down: $(STAMP)
	$(BIN)/headwater stack down

QUIX_STAMP := .venv-quix/.installed

$(QUIX_STAMP): benchmarks/peers/quix.lock   # the Quix Streams peer's own venv: its pins clash with requirements.lock
	$(PYTHON) -m venv .venv-quix
	.venv-quix/bin/pip install -q --disable-pip-version-check -r benchmarks/peers/quix.lock
	touch $@

bench: jars $(QUIX_STAMP)  ## benchmarks: print figures and ratios (not part of the test suite)
	$(BIN)/python benchmarks/pipeline_bench.py
	$(BIN)/python benchmarks/latency_bench.py

bench-cluster: jars       ## how cost grows: the pipeline at 10^4..10^6 records, local vs the Spark cluster (long)
	$(BIN)/python benchmarks/cluster_cost.py

clean:
	-$(BIN)/headwater stack down
	rm -rf $(VENV) .headwater
