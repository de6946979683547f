#!/usr/bin/env bash
# Build ncnn's int8 tools, ncnn2table and ncnn2int8, for `yolact export --format ncnn --int8`
# (see README.md here). Prints the folder that holds them; a second run only prints it.
#   third_party/ncnn_quantize/build.sh [OUT]
# OUT default: $YOLACT_CACHE_DIR, else $XDG_CACHE_HOME/yolact, else ~/.cache/yolact; then
# ncnn-tools-20260526 (where the exporter looks). JOBS: parallel compile jobs (default: all cores).
set -euo pipefail
TAG=20260526
VERSION="1.0.$TAG"
SHA256=282f0f4a1beec1f5212aa0d22c00737418645055f33c2d2082922931cdbdc537
URL="https://files.pythonhosted.org/packages/5b/77/d6acfd9b652463a2037a1113954f2cf0aa7d4c414de31b01aeb1fd9bf9e7/ncnn-$VERSION.tar.gz"
HERE="$(cd "$(dirname "$0")" && pwd)"
BASE="${YOLACT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/yolact}"
OUT="${1:-$BASE/ncnn-tools-$TAG}"
BIN="$OUT/bin"
if [ -x "$BIN/ncnn2table" ] && [ -x "$BIN/ncnn2int8" ]; then
    echo "$BIN"
    exit 0
fi
for tool in cmake c++; do
    command -v "$tool" >/dev/null || { echo "build.sh: needs $tool (e.g. apt-get install cmake g++)" >&2; exit 1; }
done
mkdir -p "$OUT"
SDIST="$OUT/ncnn-$VERSION.tar.gz"
if [ ! -f "$SDIST" ] || ! echo "$SHA256  $SDIST" | sha256sum -c --status; then
    echo "build.sh: downloading the ncnn $VERSION sdist from PyPI" >&2
    if command -v curl >/dev/null; then
        curl -sSfL --retry 3 -o "$SDIST.part" "$URL"
    else  # no curl on the machine: Python's urllib (python3 is there to run the package anyway)
        python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$URL" "$SDIST.part"
    fi
    echo "$SHA256  $SDIST.part" | sha256sum -c --status || { echo "build.sh: $URL: SHA-256 mismatch" >&2; exit 1; }
    mv "$SDIST.part" "$SDIST"
fi
SRC="$OUT/src"
rm -rf "$SRC" && mkdir -p "$SRC"
# the C++ library only (not its glslang or Python bindings)
tar xzf "$SDIST" -C "$SRC" --strip-components=1 "ncnn-$VERSION/CMakeLists.txt" "ncnn-$VERSION/LICENSE.txt" \
    "ncnn-$VERSION/cmake" "ncnn-$VERSION/src"
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
START=$(date +%s)
cmake -S "$HERE" -B "$OUT/build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DNCNN_SOURCE_DIR="$SRC" >"$OUT/cmake.log" 2>&1 \
    || { tail -20 "$OUT/cmake.log" >&2; echo "build.sh: cmake configure failed (log: $OUT/cmake.log)" >&2; exit 1; }
cmake --build "$OUT/build" --target ncnn2table ncnn2int8 -j "${JOBS:-$(nproc)}" >"$OUT/build.log" 2>&1 \
    || { tail -20 "$OUT/build.log" >&2; echo "build.sh: build failed (log: $OUT/build.log)" >&2; exit 1; }
# the tools appear together or not at all
rm -rf "$BIN.part" && mkdir -p "$BIN.part"
cp "$OUT/build/ncnn2table" "$OUT/build/ncnn2int8" "$BIN.part/"
rm -rf "$BIN" && mv "$BIN.part" "$BIN"
rm -rf "$SRC" "$OUT/build"
echo "build.sh: built ncnn2table and ncnn2int8 in $(( $(date +%s) - START )) s" >&2
echo "$BIN"
