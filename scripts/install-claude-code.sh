#!/usr/bin/env bash
# Install Claude Code (`npm install @anthropic-ai/claude-code`) for the slow suite's real-client tests, and
# print the path of its `claude` executable.
#
# Idempotent and cached: when the executable already exists this prints its path and exits.
#   cache: ${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/npm/claude-code/<version>/
#   env:   CLAUDE_CODE_VERSION (pinned below)
# Progress goes to stderr; only the executable's path goes to stdout. Exit 1 when npm is missing or the
# install fails (the tests then skip, naming this script's message).
set -euo pipefail

VERSION="${CLAUDE_CODE_VERSION:-2.1.332}"
CACHE_ROOT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}"
DEST="$CACHE_ROOT/npm/claude-code/$VERSION"
BIN="$DEST/node_modules/.bin/claude"

if [[ -x "$BIN" ]]; then
    echo "$BIN"
    exit 0
fi

log() { echo "install-claude-code: $*" >&2; }
command -v npm >/dev/null || { log "npm is not installed"; exit 1; }

mkdir -p "$DEST"
exec 9>"$DEST/.lock"
if command -v flock >/dev/null; then
    flock 9
    if [[ -x "$BIN" ]]; then  # another install finished while we waited
        echo "$BIN"
        exit 0
    fi
fi

log "installing @anthropic-ai/claude-code@$VERSION into $DEST"
npm install --prefix "$DEST" --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$VERSION" >&2
[[ -x "$BIN" ]] || { log "install finished without $BIN"; exit 1; }
echo "$BIN"
