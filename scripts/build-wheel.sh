#!/usr/bin/env bash
# Release build into dist/: one abi3 wheel (CPython 3.11+) for manylinux2014 (glibc 2.17,
# x86_64) and the sdist, without a container.
#
# * The wheel is linked by zig (maturin --zig, zig from the `ziglang` wheel on PyPI) against
#   glibc 2.17 symbols, so it loads on old managed runtimes although this machine has a newer
#   glibc; a plain `maturin build` would tag the wheel with the build machine's glibc.
# * The Cargo profile is `dist` (fat LTO, one codegen unit, symbols stripped): about 1 MB of
#   extension instead of 5+ MB with the `release` profile's line tables.
# * The wheel is then checked: `auditwheel show` must find it manylinux2014-compatible (no
#   symbol newer than glibc 2.17, no external library), `twine check --strict` must pass for
#   the wheel and the sdist, and the wheel must stay under 3 MB.
#
# The build tools live in their own virtual environment (target/build-venv, reused between
# runs), pinned to versions that build this crate (pyo3 0.29 needs maturin >= 1.14).
# Needs: python3 (3.11+), a Rust toolchain (cargo), network access to PyPI and crates.io.
# Usage: bash scripts/build-wheel.sh   (DIDCORE_BUILD_VENV=DIR to put the tools elsewhere)
set -euo pipefail
cd "$(dirname "$0")/.."

MATURIN_VERSION="1.16.0"
ZIGLANG_VERSION="0.15.2"
AUDITWHEEL_VERSION="6.8.2"
TWINE_VERSION="7.0.0"
TARGET="x86_64-unknown-linux-gnu"
MAX_WHEEL_BYTES=$((3 * 1024 * 1024))

step() { printf '\n== %s\n' "$*"; }

venv="${DIDCORE_BUILD_VENV:-target/build-venv}"
step "build tools in $venv (maturin $MATURIN_VERSION, ziglang $ZIGLANG_VERSION)"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "maturin==$MATURIN_VERSION" "ziglang==$ZIGLANG_VERSION" \
    "auditwheel==$AUDITWHEEL_VERSION" "twine==$TWINE_VERSION"
# maturin finds zig as `python -m ziglang` of the Python on PATH: put the build venv first.
export PATH="$(cd "$venv/bin" && pwd):$PATH"
rustup target add "$TARGET" >/dev/null 2>&1 || true
# A target folder of its own: the zig-linked, fat-LTO objects never mix with (or wait for the
# lock of) the development builds in target/.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/wheel}"

# Only this package's own artefacts are replaced; anything else in dist/ is left alone.
mkdir -p dist
rm -f dist/didcore-*.whl dist/didcore-*.tar.gz

step "wheel: abi3, manylinux2014 via zig, profile dist (stripped)"
start=$(date +%s)
maturin build --locked --profile dist --zig --target "$TARGET" \
    --compatibility manylinux2014 --interpreter python3 --out dist
echo "wheel built in $(($(date +%s) - start)) s"

step "sdist"
maturin sdist --out dist

wheel=$(ls dist/didcore-*-cp311-abi3-*manylinux*2_17*x86_64*.whl)
sdist=$(ls dist/didcore-*.tar.gz)

step "auditwheel: the wheel must be manylinux2014 (glibc 2.17) compatible"
report=$(auditwheel show "$wheel")
echo "$report"
# auditwheel wraps its sentences: join the lines before reading the verdict.
if ! tr -s ' \n' '  ' <<<"$report" \
    | grep -q 'consistent with the following platform tag: "manylinux_2_17_x86_64"'; then
    echo "error: auditwheel does not find $wheel manylinux_2_17 (manylinux2014) compatible" >&2
    exit 1
fi

step "twine check --strict"
twine check --strict "$wheel" "$sdist"

step "size"
size=$(stat -c %s "$wheel")
awk -v w="$wheel" -v s="$size" -v m="$MAX_WHEEL_BYTES" \
    'BEGIN { printf "%s: %d bytes (%.2f MB); limit %d bytes\n", w, s, s / 1048576, m }'
if ((size >= MAX_WHEEL_BYTES)); then
    echo "error: the wheel is $size bytes, over the 3 MB limit" >&2
    exit 1
fi
ls -l dist/
