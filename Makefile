# Two commands set everything up on a fresh machine: `make run` and `make test`.
# Needs Python 3.11, Node.js (20.6+) and npm; everything else installs inside the repo.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: install chromium test lint typecheck pytest run sandbox bench chaos fuzz requirements clean

install: $(STAMP) $(NODE_STAMP) chromium

# The incident record's HTML is checked in Debian's headless Chromium (driven by Playwright, never
# `playwright install`): installed with apt-get when missing, as root or through sudo.
CHROMIUM := /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium; \
	  else echo "Chromium is required for the tests ($(CHROMIUM)): run 'apt-get install -y chromium' as root (or make install with sudo rights)"; exit 1; fi; }
	@test -x $(CHROMIUM) || { echo "apt-get did not install $(CHROMIUM); install Debian's chromium package"; exit 1; }

$(STAMP): pyproject.toml requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found %d.%d); set PYTHON=/path/to/python3.11" % sys.version_info[:2])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,infra]'
	touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is required for Azurite: install Node.js 20.6+ with npm"; exit 1; }
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy .

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

# make run PORT=7072 AZURITE_PORTS=10010,10011,10012 runs a second stack (from another checkout) beside the first.
PORT ?= 7071
AZURITE_PORTS ?= 10000,10001,10002

run: install
	$(BIN)/python -m devhost run --port $(PORT) --azurite-ports $(AZURITE_PORTS)

sandbox: install
	$(BIN)/python -m sandbox serve

bench: install
	$(BIN)/python -m benchmarks

# Fault campaign: SIGKILLs the function host 20 times under injected faults, then prints the figures
# (exit 1 when one is wrong). Bounded to 5 minutes. Options: make chaos CHAOS_ARGS="--kills 40 --seed 7"
chaos: install
	$(BIN)/python -m chaos campaign $(CHAOS_ARGS)

# Webhook fuzz run: 10,000 hostile requests at the receiver on loopback; fails on any 5xx or drop.
# Options: make fuzz FUZZ_ARGS="--requests 50000 --seed 3"
fuzz: install
	$(BIN)/python -m chaos fuzz $(FUZZ_ARGS)

requirements: install
	$(BIN)/python -m shared.requirements write

clean:
	rm -rf $(VENV) node_modules .run .mypy_cache .ruff_cache .pytest_cache
