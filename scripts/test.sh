#!/usr/bin/env bash
# Installs what the tests need and runs every check: ruff, mypy (strict on the library) and the whole pytest
# suite, including the slow e2e suite (a real llama.cpp server: built from source on first use, ~10 minutes,
# then cached under ${TOLLGATE_CACHE:-~/.cache/tollgate}; the web console in headless Chromium, installed
# with apt-get when missing; Claude Code and the Codex CLI from npm, cached there too). Arguments replace the
# test selection, e.g.
#   bash scripts/test.sh -m "not slow" -n 4 the quick suite only, on 4 workers
#   bash scripts/test.sh -m slow            the slow suite only
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TOLLGATE_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet --disable-pip-version-check --upgrade pip
python -m pip install --quiet --disable-pip-version-check -e ".[test]"
bash scripts/dynalite.sh install  # dynalite (npm) under .tools/: the contract tests' DynamoDB server
# headless Chromium + chromedriver for the console's browser tests (tests/e2e/test_console.py), from the
# machine's package manager (never a browser download at run time); only when missing and slow tests run
case " $* " in
  *"not slow"*) ;;
  *)
    if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
      sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
      if command -v apt-get >/dev/null; then
        $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium chromium-driver
      else
        echo "scripts/test.sh: install chromium and chromedriver for the console's browser tests" >&2
      fi
    fi
    # the Codex CLI (npm, pinned, cached under ~/.cache/tollgate/npm) for tests/e2e/test_codex.py; the
    # tests skip when it cannot be installed
    bash scripts/install-codex.sh >/dev/null || echo "scripts/test.sh: could not install the Codex CLI" >&2
    # llama.cpp's llama-server (built on the CPU, ~10 minutes the first time) and the SmolLM2 model, both
    # cached under ~/.cache/tollgate: here, not in the e2e fixtures, whose first build would outlast
    # pytest's per-test timeout (300 s); the fixtures fail with the script's error if these fail
    bash scripts/build-llama-server.sh >/dev/null || echo "scripts/test.sh: could not build llama-server" >&2
    bash scripts/fetch-smollm2.sh >/dev/null || echo "scripts/test.sh: could not fetch the SmolLM2 model" >&2
    ;;
esac
# Claude Code (npm, cached) for the slow suite's real-client tests; they skip only when it cannot be installed
bash scripts/install-claude-code.sh >/dev/null || echo "test.sh: Claude Code could not be installed" >&2
bash scripts/validate-template.sh  # sam validate, SAM transform + cfn-lint (own venv: .tools/sam-venv)
ruff check layers tests bench functions
mypy
if [ "$#" -gt 0 ]; then
  exec python -m pytest "$@"
fi
# Everything: the quick suite on TOLLGATE_TEST_WORKERS (4) pytest-xdist workers (it waits on sockets and
# subprocesses far more than it computes: 4 workers are ~2.4x faster than one on 2 cores; the servers tests
# start in other processes get their ports from tests/ports.py, outside the range another worker's bind(0)
# draws from), then the slow suite in one process (its llama-server decodes on the machine's cores and its
# real clients time out; it must not compete with other tests). Both run; the script fails if either does.
status=0
python -m pytest -m "not slow" -n "${TOLLGATE_TEST_WORKERS:-4}" || status=$?
python -m pytest -m slow || status=$?
exit "$status"
