"""Hostile inputs hold the contract (issue 12): a brief fuzz campaign, each case isolated in
a worker subprocess (see tests/fuzz/__init__.py for the kinds and outcome classes).

The budget is set by ``DIDCORE_FUZZ_CASES`` (default 300, under a minute on two cores) and
the campaign by ``DIDCORE_FUZZ_SEED``; ``DIDCORE_FUZZ_JOBS`` sets the worker processes. For a
long run: ``python -m tests.fuzz --cases 10000 --seed N --report out.json --findings DIR``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fuzz.cases import SELFTESTS
from fuzz.runner import format_summary, run_campaign

CASES = int(os.environ.get("DIDCORE_FUZZ_CASES", "300"))
SEED = int(os.environ.get("DIDCORE_FUZZ_SEED", "20261206"))
JOBS = int(os.environ.get("DIDCORE_FUZZ_JOBS", "2"))


def test_hostile_inputs_hold_the_contract(tmp_path: Path) -> None:
    """Every case gives a result (conservation, and the reference's counts where the input
    is valid) or an InputError; never another exception, a signal, a hang or a miscount.
    """
    report = run_campaign(CASES, SEED, jobs=JOBS, timeout=60, findings=tmp_path / "findings")
    (tmp_path / "report.json").write_text(json.dumps(report, indent=1, default=str))
    text = format_summary(report)
    print(text)
    assert report["results"] >= CASES
    # generators that stop building their inputs would hollow the campaign out unnoticed
    skipped = report["outcomes"].get("SKIP", 0)
    assert skipped <= CASES // 10, text
    assert report["violations"] == 0, (
        f"{report['violations']} contract violations (reproducers under "
        f"{tmp_path / 'findings'}):\n{text}"
    )


def test_the_harness_catches_crashes_hangs_raw_errors_and_miscounts(tmp_path: Path) -> None:
    """The runner's classes on cases built to misbehave: a segfault is a CRASH (and the
    worker is replaced), an abort at interpreter exit a CRASH (in a fresh process), a sleep
    a HANG, a KeyError RAW, an InternalError INTERNAL, a count that differs from the
    reference a MISMATCH; each violation leaves a reproducer.
    """
    want = {
        "segfault": "CRASH",
        "raw": "RAW",
        "hang": "HANG",
        "internal": "INTERNAL",
        "miscount": "MISMATCH",
        "ok": "OK",
    }
    for kind, exit_abort in (("selftest", "OK"), ("solo:selftest", "CRASH")):
        report = run_campaign(7, 1, jobs=1, timeout=3, kinds=[kind], findings=tmp_path / kind)
        text = format_summary(report)
        cases = {r["seed"] % len(SELFTESTS): r for r in report["violation_cases"] if r["id"] >= 0}
        expected = {**want, "abort_at_exit": exit_abort}
        for i, how in enumerate(SELFTESTS):
            got = cases[i]["outcome"] if i in cases else "OK"
            assert got == expected[how], f"{kind} {how}: {got}\n{text}"
        if kind == "solo:selftest":
            abort = cases[SELFTESTS.index("abort_at_exit")]
            assert abort["exc_type"] == "signal 6", abort
        for s in report["signatures"]:
            assert all(Path(p, "repro.py").is_file() for p in s["saved"]), s
