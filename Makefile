# The two commands a new user needs: `make run` and `make test`.
# Both create .venv themselves; `make test` also installs the Debian
# packages and npm modules the tests use (scripts/install-test-deps).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_DIR := tests/interop/node

.PHONY: run test test-sqlite test-postgresql lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/idp serve --host 127.0.0.1 --port 5000

$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error

test: $(STAMP)
	scripts/install-test-deps
	$(MAKE) $(NODE_DIR)/node_modules/.package-lock.json
	$(MAKE) lint
	IDP_TEST_DATABASE=sqlite $(BIN)/pytest -q
	IDP_TEST_DATABASE=postgresql $(BIN)/pytest -q

test-sqlite: $(STAMP)
	IDP_TEST_DATABASE=sqlite $(BIN)/pytest -q

test-postgresql: $(STAMP)
	IDP_TEST_DATABASE=postgresql $(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check idp consent_ui tests bench
	$(BIN)/ruff format --check --quiet idp consent_ui tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
