# Two commands on a fresh machine: `make lab` (or `make demo`) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nbfan-installed
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install system-deps test demo lab bench clean

# The JupyterLab panel's sources: when they change, the install rebuilds it (the build hook
# skips the build while nbfan/labextension/ exists, so it is removed first).
LABEXT_SRC := $(shell find labextension/src labextension/style -type f 2>/dev/null) labextension/package.json labextension/yarn.lock

$(STAMP): pyproject.toml $(LABEXT_SRC)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	rm -rf nbfan/labextension
	$(PY) -m pip install -q -e ".[test]"
	$(VENV)/bin/jupyter labextension list 2>&1 | grep -E "nbfan v.*enabled.*OK" >/dev/null || { $(VENV)/bin/jupyter labextension list; exit 1; }
	touch $(STAMP)

install: $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

test: install system-deps
	$(PY) -m pytest

# JupyterLab on 127.0.0.1 with the nbfan panel; its server extension brings up (or joins) the
# local nbfan cluster that every kernel shares. Opens the first example notebook if there is one.
lab: install
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) $(firstword $(wildcard notebooks/*.ipynb))

demo: install
	$(PY) -m nbfan.demo

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info
