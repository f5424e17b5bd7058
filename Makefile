# Two commands set up a fresh machine: `make demo` and `make test`.
# Each creates .venv with python3 -m venv and installs what it needs (idempotent: a stamp file
# records the installed pyproject.toml, so a second call starts at once).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test test-fast test-timing test-browser test-scientific binder-check bench clean env

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(BIN)/workbench demo

test: $(STAMP)
	$(BIN)/python -m pytest -q
	$(BIN)/python -m pytest -q --nbval notebooks/ --nbval-sanitize-with notebooks/nbval-sanitize.cfg

# Real-time checks (marker `timing`): the arithmetic they rest on is tested with a manual clock in
# `make test`; these few confirm it against the real clocks, on a machine left alone.
test-timing: $(STAMP)
	$(BIN)/python -m pytest -q -m timing

# The scientific Python runtime (marker `scientific`): installs it first (once: a ~98 MB download,
# checked by sha256, and a compile of a minute or more that needs ~3 GB of free memory; then a no-op),
# into the user's runtimes folder (workbench runtimes list).  `make test` never downloads or compiles it.
test-scientific: $(STAMP)
	$(BIN)/workbench runtimes install scientific
	$(BIN)/python -m pytest -q -m scientific

# The real-browser test (tests/browser, marked `browser`): JupyterLab + Debian's Chromium + Playwright.
# Installs what it needs: chromium through apt-get (as root, or with sudo), playwright and jupyterlab
# through pip (the `browser` extra).  Screenshots go to build/test-artifacts/.
CHROMIUM      ?= /usr/bin/chromium
SUDO          := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BROWSER_STAMP := $(VENV)/.browser-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

$(BROWSER_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,browser]'
	rm -f $(VENV)/.browser-*
	touch $(BROWSER_STAMP)

test-browser: $(BROWSER_STAMP)
	test -x $(CHROMIUM) || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium)
	WORKBENCH_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -q -m browser tests/browser

# CI's stand-in for mybinder.org: a fresh venv from exactly binder/, its postBuild, notebook 01, and
# jupyter-repo2docker --no-build rendering the Dockerfile (binder/check.sh).
binder-check:
	bash binder/check.sh

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
