#!/usr/bin/env bash
# Installs what the tests need (a venv with the package and its test extras) and runs the checks:
# ruff, mypy (strict on the library) and pytest. Extra arguments go to pytest, e.g. `-m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TOLLGATE_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet --disable-pip-version-check --upgrade pip
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
ruff check layers tests bench functions
mypy
python -m pytest "$@"
