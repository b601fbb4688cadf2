# The two commands a new user needs: `make run` and `make test`.
# Both create .venv themselves; `make test` also installs the Debian
# packages and npm modules the tests use (scripts/install-test-deps).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NODE_DIR := tests/interop/node
A11Y_DIR := tests/a11y
A11Y_STAMP := $(A11Y_DIR)/node_modules/.package-lock.json
GEOIP_DIR := geoip
GEOIP_STAMP := $(GEOIP_DIR)/node_modules/.package-lock.json

.PHONY: run demo test test-sqlite test-postgresql lint bench clean country-db translations config-reference screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP) country-db
	$(BIN)/idp serve --host 127.0.0.1 --port 5000

# The provider on :5000 and the demo shop (examples/shop) on :5001.
demo: $(STAMP) country-db
	$(BIN)/python -m examples.shop.demo

# The IP-to-country database of the embedded defaults (CC0, from npm; see the
# README).  Without npm the provider still runs: countries are then unknown.
$(GEOIP_STAMP): $(GEOIP_DIR)/package-lock.json
	cd $(GEOIP_DIR) && npm ci --no-audit --no-fund --loglevel=error

country-db:
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(GEOIP_STAMP); \
	else \
		echo "npm not found: sign-in countries stay unknown (install Node.js and npm, or set geoip.database)"; \
	fi

$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error

$(A11Y_STAMP): $(A11Y_DIR)/package-lock.json
	cd $(A11Y_DIR) && npm ci --no-audit --no-fund --loglevel=error

test: $(STAMP)
	scripts/install-test-deps
	$(MAKE) $(NODE_DIR)/node_modules/.package-lock.json $(GEOIP_STAMP) $(A11Y_STAMP)
	$(MAKE) lint
	scripts/run-suites

test-sqlite: $(STAMP) $(GEOIP_STAMP)
	IDP_TEST_DATABASE=sqlite $(BIN)/pytest -q

test-postgresql: $(STAMP) $(GEOIP_STAMP)
	IDP_TEST_DATABASE=postgresql $(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check idp consent_ui tests bench examples
	$(BIN)/ruff format --check --quiet idp consent_ui tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports

# Not part of `make test`: minutes of load, this provider beside
# node-oidc-provider (bench/peer, pinned by its lock file).
PEER_STAMP := bench/peer/node_modules/.package-lock.json

$(PEER_STAMP): bench/peer/package-lock.json
	cd bench/peer && npm ci --no-audit --no-fund --loglevel=error

bench: $(STAMP)
	scripts/install-test-deps wrk
	$(MAKE) --no-print-directory $(PEER_STAMP)
	$(BIN)/python -m bench.run

# Extract the pages' and the provider's sentences, merge them into the
# Japanese catalogs and compile them (the .mo files are committed).
translations: $(STAMP)
	$(BIN)/python scripts/update-translations

# docs/configuration.md from the settings tree and config.example.toml.
config-reference: $(STAMP)
	$(BIN)/python scripts/config-reference

# docs/screenshots/: the main pages, phone and desktop, Japanese and English
# (needs what make test installs; not part of it).
screenshots: $(STAMP)
	scripts/install-test-deps pkg:fonts-ipafont-gothic
	$(BIN)/python scripts/screenshots

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
