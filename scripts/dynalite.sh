#!/usr/bin/env bash
# dynalite: a real DynamoDB-wire server from npm (in memory), used by the store contract tests.
#   bash scripts/dynalite.sh install     install it under .tools/ (idempotent; needs node >= 20 and npm)
#   bash scripts/dynalite.sh path        print the path of its cli.js
#   bash scripts/dynalite.sh start PORT  run it in the foreground on 127.0.0.1:PORT (scripts/dynalite-server.js:
#                                        cli.js that survives a client leaving mid-request)
set -euo pipefail
cd "$(dirname "$0")/.."
version="4.0.0"
prefix=".tools"  # gitignored; tests/contract/backend_dynamodb.py looks here
cli="$prefix/node_modules/dynalite/cli.js"

installed_version() {
  node -p "require('./$prefix/node_modules/dynalite/package.json').version" 2>/dev/null || true
}

case "${1:-install}" in
  install)
    if [ -f "$cli" ] && [ "$(installed_version)" = "$version" ]; then
      exit 0
    fi
    command -v npm >/dev/null || { echo "dynalite.sh: npm is required (node >= 20)" >&2; exit 1; }
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error "dynalite@$version"
    [ -f "$cli" ] || { echo "dynalite.sh: install finished but $cli is missing" >&2; exit 1; }
    ;;
  path)
    echo "$cli"
    ;;
  start)
    exec node scripts/dynalite-server.js --host 127.0.0.1 --port "${2:?usage: dynalite.sh start PORT}"
    ;;
  *)
    echo "usage: dynalite.sh install|path|start PORT" >&2
    exit 2
    ;;
esac
