#!/usr/bin/env bash
# The core tests (.remote, .map, spawn_map, the magics, quiet exits of scripts and kernels) on other CPython versions, each in its
# own venv (.venv-pyX.Y) installed from the same lock as the main one. Interpreters come from
# pyenv (the machine image has 3.10-3.13). Usage: scripts/test-pythons.sh 3.10 3.13
set -euo pipefail
cd "$(dirname "$0")/.."
LOCK=requirements/test.txt
CORE_TESTS=(tests/integration/test_remote.py tests/integration/test_map.py tests/integration/test_spawn_map.py tests/integration/test_magics.py tests/integration/test_lifecycle.py tests/integration/test_kernel_lifecycle.py)

find_python() {  # the newest installed CPython X.Y: pyenv's, else one on PATH
  local want=$1 root
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  local found
  found=$(ls -d "$root"/versions/"$want".*/bin/python 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$found" ] || found=$(command -v "python$want" || true)
  echo "$found"
}

[ -f nbfan/labextension/static/style.js ] || { echo "build the panel first: make install" >&2; exit 1; }
for version in "$@"; do
  python=$(find_python "$version")
  if [ -z "$python" ]; then
    echo "test-pythons: no CPython $version found (pyenv install $version, or put python$version on PATH)" >&2
    exit 1
  fi
  venv=".venv-py$version"
  stamp="$venv/.nbfan-installed"
  if [ ! -f "$stamp" ] || [ "$LOCK" -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q "pip==26.3"
    "$venv/bin/python" -m pip install -q -r "$LOCK"
    # the panel is already built in this tree (make install): an editable install points at it,
    # so skip the frontend build here (it would need this venv's jlpm, and rebuild the same files)
    SKIP_JUPYTER_BUILDER=1 "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
    touch "$stamp"
  fi
  echo "== core tests on $("$venv/bin/python" --version)"
  PATH="$PWD/$venv/bin:$PATH" "$venv/bin/python" -m pytest -q -p no:cacheprovider "${CORE_TESTS[@]}"
done
