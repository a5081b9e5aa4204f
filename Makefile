# Two commands on a fresh machine: `make lab` (or `make demo`) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nbfan-installed
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install system-deps test demo lab bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

test: install system-deps
	$(PY) -m pytest

demo: install
	$(PY) -m nbfan.demo

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info
