# Two commands on a fresh machine: `make lab` (or `make demo`) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nbfan-installed
# Every package `make test` installs, pinned (for Python 3.10-3.13): `make lock` regenerates it.
LOCK := requirements/test.txt
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install system-deps test test-fast test-pythons test-latest demo lab bench bench-peers lock clean

# The JupyterLab panel's sources: when they change, the install rebuilds it (the build hook
# skips the build while nbfan/labextension/ exists, so it is removed first).
LABEXT_SRC := $(shell find labextension/src labextension/style -type f 2>/dev/null) labextension/package.json labextension/yarn.lock

# Installs exactly the lock, then nbfan itself without resolving anything (its build
# dependencies are in the lock too, so the build environment is pinned as well).
$(STAMP): pyproject.toml $(LOCK) $(LABEXT_SRC)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q "pip==26.3"
	$(PY) -m pip install -q -r $(LOCK)
	rm -rf nbfan/labextension
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(VENV)/bin/jupyter labextension list 2>&1 | grep -E "nbfan v.*enabled.*OK" >/dev/null || { $(VENV)/bin/jupyter labextension list; exit 1; }
	touch $(STAMP)

install: $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

# The whole suite on the locked environment (the panel's pure modules under vitest first), then
# the core tests on the oldest and newest Python nbfan supports.
test: install system-deps
	cd labextension && $(abspath $(VENV))/bin/jlpm test
	$(PY) -m pytest
	bash scripts/test-pythons.sh 3.10 3.13

# The pure parts (no cluster, no browser) in seconds: layering, lint, keys, batching, sources,
# outcomes, tracebacks, options, the scheduler store, distributed internals nbfan relies on.
test-fast: install
	$(PY) -m pytest -q tests/unit

# The core tests (.remote, .map, spawn_map, magics) on other CPython versions (pyenv's).
test-pythons: install
	bash scripts/test-pythons.sh 3.10 3.13

# The suite against the newest releases pyproject's ranges allow (not the lock): run before a
# release, and before raising the lock.
test-latest: system-deps
	bash scripts/test-latest.sh

# JupyterLab on 127.0.0.1 with the nbfan panel; its server extension brings up (or joins) the
# local nbfan cluster that every kernel shares. Opens the first example notebook if there is one.
lab: install
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) $(firstword $(wildcard notebooks/*.ipynb))

demo: install
	$(PY) -m nbfan.cli.demo

bench: install
	$(PY) benchmarks/run_all.py

# nbfan against raw Dask, chunked Dask, Ray, joblib, ipyparallel and a process pool on this machine
# (2 workers each): prints the table, writes benchmarks/results/peers.md and peers.png. The bench
# extra goes on top of the lock; `install` has just built the panel, so the editable reinstall skips it.
bench-peers: install
	SKIP_JUPYTER_BUILDER=1 $(PY) -m pip install -q --no-build-isolation -e ".[bench]"
	$(PY) benchmarks/peers.py

# Re-resolve the lock from pyproject (runtime + test extras) and the build requirements.
lock: install
	$(PY) -m pip install -q uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra test requirements/build.in --universal \
		--python-version 3.10 -o $(LOCK)

clean:
	rm -rf $(VENV) .venv-py* .venv-latest .venv-stock build dist *.egg-info
