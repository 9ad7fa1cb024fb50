#!/usr/bin/env bash
# Install the Codex CLI (npm @openai/codex, pinned) for the slow suite's real-client tests, and print the
# path of its `codex` command.
#
# Idempotent and cached: when the command already exists this prints its path and exits.
#   cache: ${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/npm/codex/<version>/
#   env:   CODEX_VERSION (pinned below)
# Progress goes to stderr; only the command's path goes to stdout.
set -euo pipefail

VERSION="${CODEX_VERSION:-0.171.0}"
CACHE_ROOT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}"
DEST="$CACHE_ROOT/npm/codex/$VERSION"
BIN="$DEST/node_modules/.bin/codex"

if [[ -x "$BIN" ]]; then
    echo "$BIN"
    exit 0
fi
command -v npm >/dev/null || { echo "install-codex: npm is required" >&2; exit 1; }

mkdir -p "$DEST"
exec 9>"$DEST/.lock"
if command -v flock >/dev/null; then
    flock 9
    if [[ -x "$BIN" ]]; then  # another install finished while we waited
        echo "$BIN"
        exit 0
    fi
fi
echo "install-codex: installing @openai/codex@$VERSION into $DEST" >&2
npm install --prefix "$DEST" --no-audit --no-fund --loglevel=error "@openai/codex@$VERSION" >&2
"$BIN" --version >&2
echo "$BIN"
