#!/usr/bin/env bash
# Runs the quick suite on the Lambda runtimes' Pythons (3.12, 3.13) when this machine has them, each in its
# own venv (.venv-py3.12, .venv-py3.13). An interpreter that is not installed is reported and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
find_python() {  # a working python$1: on PATH, else a pyenv-installed one (its shims need PYENV_VERSION)
  local candidate
  for candidate in "$(command -v "python$1" || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/"python$1"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c "import sys" 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
}
bash scripts/dynalite.sh install  # the DynamoDB-wire server some integration tests start
# the two runs go side by side, each on 2 pytest-xdist workers (the suite mostly waits on sockets and
# subprocesses; every server it starts takes a free port, from tests/ports.py where another process starts
# it, and every file lives in pytest's own temporary directory)
logs="$(mktemp -d)"
pids=()
for version in 3.12 3.13; do
  python="$(find_python "$version")"
  if [ -z "$python" ]; then
    echo "compat: python$version not found, skipped"
    continue
  fi
  venv=".venv-py$version"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
  "$venv/bin/python" -m pytest -q -p no:cacheprovider -n 2 -m "not slow" tests/unit tests/integration \
    >"$logs/$version.log" 2>&1 &
  pids+=("$version:$!")
done
failed=0
for entry in "${pids[@]}"; do
  version="${entry%%:*}"
  if wait "${entry#*:}"; then status=passed; else status=FAILED; failed=1; fi
  echo "compat: python$version $status"
  cat "$logs/$version.log"
done
rm -rf "$logs"
exit "$failed"
