#!/usr/bin/env bash
# The whole suite against the newest releases pyproject's ranges allow, in .venv-latest (not the
# lock). Prints what it installed, so a break can be pinned down to a package.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-latest
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
rm -rf nbfan/labextension  # built anew by this venv's newest toolchain
"$venv/bin/python" -m pip install -q --upgrade -e ".[test]" -r requirements/build.in  # build requirements too
mkdir -p test-artifacts
"$venv/bin/python" -m pip list --format=freeze > test-artifacts/latest-versions.txt
echo "== newest releases: $(grep -iE '^(dask|distributed|cloudpickle|jupyterlab|jupyter_server|ipykernel|tornado)==' test-artifacts/latest-versions.txt | tr '\n' ' ')"
PATH="$PWD/$venv/bin:$PATH" "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
