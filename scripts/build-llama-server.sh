#!/usr/bin/env bash
# Build llama.cpp's `llama-server` on the CPU from the llama.cpp sources vendored in the
# llama-cpp-python source distribution, and print the path of the binary.
#
# Idempotent and cached: when the binary already exists this prints its path and exits.
#   cache: ${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/llama.cpp/<version>/
#   env:   LLAMA_CPP_PYTHON_VERSION (pinned below), LLAMA_BUILD_JOBS (default 2), PIP (default: python -m pip)
# Progress goes to stderr; only the binary's path goes to stdout.
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
CACHE_ROOT="${TOLLGATE_CACHE:-$HOME/.cache/tollgate}"
DEST="$CACHE_ROOT/llama.cpp/$VERSION"
BIN="$DEST/bin/llama-server"
JOBS="${LLAMA_BUILD_JOBS:-2}"

if [[ -x "$BIN" ]]; then
    echo "$BIN"
    exit 0
fi

log() { echo "build-llama-server: $*" >&2; }

for tool in cmake c++ tar; do
    command -v "$tool" >/dev/null || { log "missing required tool: $tool"; exit 1; }
done
if [[ -n "${PIP:-}" ]]; then
    read -r -a pip_cmd <<<"$PIP"
else
    pip_cmd=("${PYTHON:-python3}" -m pip)
fi

mkdir -p "$DEST"
exec 9>"$DEST/.lock"
if command -v flock >/dev/null; then
    flock 9
    if [[ -x "$BIN" ]]; then  # another build finished while we waited
        echo "$BIN"
        exit 0
    fi
fi

SDIST_DIR="$DEST/sdist"
SRC_ROOT="$DEST/src"
SRC="$SRC_ROOT/llama_cpp_python-$VERSION/vendor/llama.cpp"
BUILD="$DEST/build"

if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
    sdist="$SDIST_DIR/llama_cpp_python-$VERSION.tar.gz"
    if [[ ! -f "$sdist" ]]; then
        log "downloading llama-cpp-python==$VERSION sdist"
        "${pip_cmd[@]}" download --quiet --no-binary :all: --no-deps \
            "llama-cpp-python==$VERSION" -d "$SDIST_DIR" >&2
    fi
    log "unpacking $sdist"
    rm -rf "$SRC_ROOT"
    mkdir -p "$SRC_ROOT"
    tar -xzf "$sdist" -C "$SRC_ROOT"
fi

# Minimal CPU-only build: no network at build or run time (no curl/openssl, no prebuilt web UI
# download), static libs so the binary is self-contained, no tests/examples/unified app.
cmake_flags=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=OFF
    -DGGML_NATIVE=OFF
    -DGGML_OPENMP=OFF
    -DLLAMA_CURL=OFF
    -DLLAMA_OPENSSL=OFF
    -DLLAMA_BUILD_COMMON=ON
    -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_BUILD_SERVER=ON
    -DLLAMA_BUILD_TESTS=OFF
    -DLLAMA_BUILD_EXAMPLES=OFF
    -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_UI=OFF
    -DLLAMA_USE_PREBUILT_UI=OFF
)
if command -v ninja >/dev/null; then
    cmake_flags+=(-G Ninja)
fi

log "configuring llama.cpp ($SRC)"
cmake -S "$SRC" -B "$BUILD" "${cmake_flags[@]}" >&2
log "building llama-server with -j$JOBS (about 10 minutes on 2 cores)"
cmake --build "$BUILD" --target llama-server -j "$JOBS" >&2

mkdir -p "$DEST/bin"
cp "$BUILD/bin/llama-server" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
log "built $BIN"
echo "$BIN"
