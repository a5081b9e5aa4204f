#!/usr/bin/env bash
# A "stock" Dask environment: dask, distributed and cloudpickle only (no nbfan), pinned by
# requirements/stock.txt (compiled against the main lock), like a cluster image users did not
# build. The stock-cluster test starts its scheduler and workers from it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-stock
PYTHON=${PYTHON:-.venv/bin/python}
if [ ! -x "$VENV/bin/dask" ] || [ requirements/stock.txt -nt "$VENV/bin/dask" ]; then
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -qq --disable-pip-version-check -r requirements/stock.txt
  touch "$VENV/bin/dask"
fi
if (cd / && "$OLDPWD/$VENV/bin/python" -c "import nbfan" 2>/dev/null); then
  echo "stock-venv: $VENV can import nbfan; it must not" >&2
  exit 1
fi
