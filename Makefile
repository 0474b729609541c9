# Trade-Matrix developer targets. `make install` once, then `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,trainer

.PHONY: install test test-fast bench lint schema clean demo backtest

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python  ## create .venv and install every package (editable)
	$(BIN)/pip install -q -c constraints.txt -e '.[$(EXTRAS)]'

test: install  ## the full test suite (uses TM_TEST_REDIS_URL / TM_TEST_DATABASE_URL when set)
	$(BIN)/pytest -q

test-fast: install  ## unit + component tests only
	$(BIN)/pytest -q tests/unit tests/component

demo: install  ## the main job: mesh replay of real history against the sim, with a report
	$(BIN)/tm demo $(DEMO_ARGS)

backtest: install  ## the same run in one process (in-memory bus, in-process venue)
	$(BIN)/tm backtest $(DEMO_ARGS)

bench: install  ## benchmarks; prints figures and writes bench/out/*.json
	@mkdir -p bench/out
	$(BIN)/python bench/bench_bus.py --json bench/out/bus.json
	$(BIN)/python bench/bench_ingest.py --json bench/out/ingest.json
	$(BIN)/python bench/bench_features.py
	$(BIN)/python bench/bench_signal.py
	$(BIN)/python bench/bench_risk.py
	$(BIN)/python bench/bench_executor.py
	$(BIN)/python bench/bench_training.py

lint: install
	$(BIN)/ruff check libs services trainer tests bench

schema: install  ## regenerate docs/events.schema.json
	$(BIN)/python -m tm_common.events.schema docs/events.schema.json

clean:
	rm -rf $(VENV) .tm bench/out
