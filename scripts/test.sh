#!/usr/bin/env bash
# The whole test suite, as CI runs it: build and install didcore from source (the Rust
# extension is compiled by maturin through pip), then Rust checks and tests, Python lint,
# and pytest over tests/ and benches/ (benchmarks run once each, for correctness).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "pip install .[test] (builds the Rust extension from source)"
python -m pip install --quiet ".[test]"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test"
cargo test --locked

step "ruff"
ruff check python tests benches
ruff format --check python tests benches

step "mypy: type hints of the package"
mypy python/didcore

step "mypy --strict: a typed user script on the public API (tests/typing/user_script.py)"
mypy --strict tests/typing/user_script.py

step "stubtest: the hand-written stub matches the compiled module"
(cd /tmp && python -m mypy.stubtest didcore._didcore)

step "pytest"
# Run from outside the source tree's python/ folder so the installed package is the one tested.
python -m pytest "$@"
