# Trade-Matrix developer targets. `make install` once, then `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,trainer

.PHONY: install test test-fast bench lint schema clean demo backtest chaos faults fuzz

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

bench: install  ## benchmarks: prints figures, writes bench/results.json and bench/results.md
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

chaos: install  ## kill -9 random services during a lockstep mesh replay; compare with a clean run
	$(BIN)/python -m tm_app.chaos $(CHAOS_ARGS)

faults: install  ## Redis restart, PostgreSQL outage, venue faults, WebSocket drops during a run
	$(BIN)/python -m tm_app.faults $(FAULTS_ARGS)

fuzz: install  ## 10,000 malformed entries into every stream, schemathesis on every service
	$(BIN)/python tools/fuzz_streams.py $(FUZZ_ARGS)

lint: install
	$(BIN)/ruff check libs services trainer tests bench

schema: install  ## regenerate docs/events.schema.json
	$(BIN)/python -m tm_common.events.schema docs/events.schema.json

clean:
	rm -rf $(VENV) .tm bench/out
