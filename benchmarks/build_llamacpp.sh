#!/usr/bin/env bash
# Build llama.cpp's own command-line tools from the llama.cpp vendored in the installed
# llama-cpp-python's source distribution, so the benchmarks compare lcchat with the CLI
# built from the very same source (same kernels, same version) on the same machine.
#
# A benchmark step, not a test and not a dependency: CPU only, only the tools the
# benchmarks run (llama-bench, llama-completion, llama-lookup), niced (nice 10), two jobs, into a
# cache outside the repository. Prints the bin directory on its last line.
#
#   benchmarks/build_llamacpp.sh [PYTHON]
#
# Environment: LCCHAT_BENCH_CACHE (default ~/.cache/lcchat-bench), SDIST_DIR (where the
# sdist is looked for and downloaded to, default /tmp/sdist), JOBS (default 2).
set -euo pipefail

PYTHON=${1:-python3}
CACHE=${LCCHAT_BENCH_CACHE:-$HOME/.cache/lcchat-bench}
SDIST_DIR=${SDIST_DIR:-/tmp/sdist}
JOBS=${JOBS:-2}
TARGETS=(llama-bench llama-completion llama-lookup)

VERSION=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')
SDIST="$SDIST_DIR/llama_cpp_python-$VERSION.tar.gz"
SRC="$CACHE/llama_cpp_python-$VERSION"
BUILD="$CACHE/build-$VERSION"
BIN="$BUILD/bin"

have_all() {
    for t in "${TARGETS[@]}"; do [ -x "$BIN/$t" ] || return 1; done
}

if have_all; then
    echo "$BIN"
    exit 0
fi

if [ ! -f "$SDIST" ]; then
    mkdir -p "$SDIST_DIR"
    "$PYTHON" -m pip download --no-binary :all: --no-deps --dest "$SDIST_DIR" "llama-cpp-python==$VERSION" >&2
fi

mkdir -p "$CACHE"
if [ ! -f "$SRC/vendor/llama.cpp/CMakeLists.txt" ]; then
    tar -xzf "$SDIST" -C "$CACHE"
fi

nice cmake -S "$SRC/vendor/llama.cpp" -B "$BUILD" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=ON \
    -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
    -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=ON >&2
nice cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}" >&2

have_all
echo "$BIN"
