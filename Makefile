# PersonaBridge: `make run` starts it on the embedded defaults, `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# setuptools prints a banner on every editable install (a reminder that the checkout is
# what runs); it says nothing a checkout's user needs, so it is filtered out.
PIP := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test lint typecheck imports pytest browser bench chat clean

run: $(VENV)/.runtime
	$(BIN)/personabridge run

chat: $(VENV)/.runtime
	$(BIN)/personabridge chat

test: $(VENV)/.dev lint typecheck imports pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy

imports: $(VENV)/.dev
	$(BIN)/lint-imports

pytest: $(VENV)/.dev browser
	$(BIN)/pytest -q

# The browser test drives Debian's Chromium (Playwright's own browser download cannot
# work offline). Installed once when missing.
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser: $(CHROMIUM)

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "no $(CHROMIUM) and no apt-get: install Chromium"; exit 1; }
	@echo "installing Debian's chromium for the browser test (once)"
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null

# One table of every benchmark against its goals; `make bench BENCH_ARGS=--quick` smokes.
bench: $(VENV)/.dev
	$(BIN)/python bench/all.py $(BENCH_ARGS)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "PersonaBridge needs Python 3.11 or newer as $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	@touch $@ $(VENV)/.runtime

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
