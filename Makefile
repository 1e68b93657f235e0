# securechat developer commands. `make run` and `make test` are all a fresh machine needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
CERTS := certs

.PHONY: venv proto proto-check certs run test test-fast lint format bench bench-quick bench-soak clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $(STAMP)

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

# Fails when the committed generated/ differs from what `make proto` produces.
proto-check: proto
	@git diff --exit-code --stat -- generated/ || (echo "generated/ is stale: run 'make proto' and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- generated/)" || (git status --porcelain -- generated/; echo "generated/ has untracked changes: run 'make proto' and commit" >&2; exit 1)

$(CERTS)/ca.crt $(CERTS)/server.crt $(CERTS)/client.crt:
	$(MAKE) certs

certs: $(STAMP)
	@if [ -f $(CERTS)/ca.crt ] && [ -f $(CERTS)/server.crt ] && [ -f $(CERTS)/client.crt ]; then \
		echo "certs/ already holds a CA, server and client certificate (securechat-admin certs show)"; \
	else \
		$(BIN)/securechat-admin certs init --dir $(CERTS) && \
		$(BIN)/securechat-admin certs issue client --dir $(CERTS); \
	fi

run: $(STAMP) certs
	$(BIN)/securechat-server

# With coverage of the server and client (pyproject.toml [tool.coverage]): fails below its floor.
# The 15 slowest steps are listed, to see which test nears its time bound on a loaded machine.
test: $(STAMP)
	$(BIN)/pytest --cov --cov-report=term-missing:skip-covered --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(PY) -m securechat.bench

bench-quick: $(STAMP)
	$(PY) -m securechat.bench --quick

# A churn soak (not in CI): SOAK_MINUTES=10 make bench-soak; writes docs/soak.{csv,png,json},
# with malloc's, SQLite's and Python's heap figures beside RSS (--heap).
SOAK_MINUTES ?= 30
bench-soak: $(STAMP)
	$(PY) -m securechat.bench.soak --heap --minutes $(SOAK_MINUTES)

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache
