# Trade-Matrix developer targets. `make install` once, then `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,trainer

.PHONY: install lock typecheck test test-fast bench lint schema clean demo backtest chaos faults fuzz

$(BIN)/python:
	$(PY) -m venv $(VENV)
	@true

# The lock: exact versions with hashes (pip-tools), one file per install profile, for CPython 3.11
# on linux/x86_64 (CI, the Docker image). `make lock` refreshes all three from pyproject.toml.
LOCK ?= requirements/dev.txt
PIP_COMPILE = $(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links

install: $(BIN)/python  ## create .venv: every dependency from the lock (hashes checked), the project editable
	$(BIN)/pip install -q --require-hashes --no-deps -r $(LOCK)
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/pip check

lock: $(BIN)/python  ## refresh the locks from pyproject.toml (then `make install` and run the tests)
	$(BIN)/pip install -q 'pip-tools==7.7.0'
	$(PIP_COMPILE) --upgrade --extra dev --extra trainer -o requirements/dev.txt pyproject.toml
	$(PIP_COMPILE) --upgrade --extra trainer -o requirements/trainer.txt pyproject.toml
	$(PIP_COMPILE) --upgrade -o requirements/runtime.txt pyproject.toml

test: install  ## the full test suite (uses TM_TEST_REDIS_URL / TM_TEST_DATABASE_URL when set)
	$(BIN)/pytest -q

test-fast: install  ## unit + component tests only
	$(BIN)/pytest -q tests/unit tests/component

demo: install  ## the main job: mesh replay of real history against the sim, with a report
	$(BIN)/tm demo $(DEMO_ARGS)

backtest: install  ## the same run in one process (in-memory bus, in-process venue)
	$(BIN)/tm backtest $(DEMO_ARGS)

bench: install  ## benchmarks: prints figures, writes bench/out/<UTC time>/results.{json,md} (bench/out/latest = newest; ignored by git)
	$(BIN)/python bench/run_all.py --out-root bench/out $(BENCH_ARGS)

chaos: install  ## kill -9 random services during a lockstep mesh replay; compare with a clean run
	$(BIN)/python -m tm_app.chaos $(CHAOS_ARGS)

faults: install  ## Redis restart, PostgreSQL outage, venue faults, WebSocket drops during a run
	$(BIN)/python -m tm_app.faults $(FAULTS_ARGS)

fuzz: install  ## 10,000 malformed entries into every stream, schemathesis on every service
	$(BIN)/python -m tm_app.fuzz $(FUZZ_ARGS)

lint: install  ## ruff (pinned by the lock) and mypy (strict on libs/ and every service's domain/)
	$(BIN)/ruff check libs services trainer apps tests bench tools
	$(BIN)/mypy

schema: install  ## regenerate docs/events.schema.json
	$(BIN)/python -m tm_app.schema docs/events.schema.json

clean:
	rm -rf $(VENV) .tm bench/out
