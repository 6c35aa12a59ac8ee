# nopass — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
LOCK := requirements/lock.txt

.PHONY: run test check lint fmt lock clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml $(LOCK)
	$(BIN)/pip install -q -c $(LOCK) -e '.[test,dev]'
	touch $(STAMP)

run: $(STAMP)  ## create .venv if missing, install, and run `nopass dev`
	$(BIN)/nopass dev

test: $(STAMP)  ## run the whole test suite
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: $(STAMP)  ## format check, lint, types, layer contract
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -c $(LOCK) -e '.[test,dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)  ## benchmark (docs/benchmarks.md) -> bench/results/latest.{json,md}
	@command -v wrk >/dev/null && command -v strace >/dev/null || \
	  apt-get install -y -qq wrk strace >/dev/null 2>&1 || \
	  echo "note: wrk/strace unavailable; single-endpoint and write counts are skipped"
	$(BIN)/python -m bench $(BENCH_ARGS)

lock:  ## re-resolve exact versions (needs uv: pip install uv)
	uv pip compile pyproject.toml --extra test --extra dev --extra bench -o $(LOCK) \
	  --python-version 3.11

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
