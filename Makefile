# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint typecheck unit bench clean system-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" ./demo/run.sh

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# Debian packages the tests run against: SoftHSM2 and OpenSC (a PKCS#11 token),
# PostgreSQL (several factory stations, one journal) and Chromium (the audit's HTML report,
# driven by Playwright). Installed only when missing.
system-deps:
	@missing=""; \
	command -v softhsm2-util >/dev/null 2>&1 || missing="$$missing softhsm2"; \
	command -v pkcs11-tool >/dev/null 2>&1 || missing="$$missing opensc"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "installing Debian packages:$$missing"; \
	  $$sudo apt-get update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends \
	    $$missing >/dev/null; \
	fi

unit: $(VENV)/.installed-test system-deps
	$(BIN)/pytest -n auto -q

test: lint typecheck unit

# The edit-test loop: every test except the slow and the oracle (tests/compat/) ones.
test-fast: $(VENV)/.installed-test system-deps
	$(BIN)/pytest -n auto -q -m "not slow and not compat"

# Every bench to the end, then one table (bench/run.py); fails only if a bench crashed.
# `make bench BENCH_ARGS=--quick` checks that they run; `BENCH_ARGS="nvs"` runs one.
bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) demo-out .mypy_cache .ruff_cache .pytest_cache
