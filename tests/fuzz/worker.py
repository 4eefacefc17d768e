"""The fuzz worker: runs cases one by one and classifies each outcome.

Protocol (one JSON object a line): the runner writes ``{"id", "kind", "seed", "dir"}`` to
the worker's stdin; the worker answers on its stdout with ``@@PHASE <id> <phase>`` lines
(``gen``, ``run``, ``ref``: so a crash is attributed to didcore or to the harness) and one
``@@RESULT <json>`` line. Anything else the code under test prints goes to stderr (the
worker moves its own stdout aside first). The worker exits when stdin closes; its exit
status is checked too, since a thread left running can abort the interpreter at teardown.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, TextIO

from . import fixtures as fx
from .cases import Case, CliRun, Invalid, Skip, build, solo_inner

TESTS = str(Path(__file__).resolve().parent.parent)
_OUT: TextIO = sys.stdout
_CURRENT = ""


def _send(line: str) -> None:
    _OUT.write(line + "\n")
    _OUT.flush()


def _phase(name: str) -> None:
    if _CURRENT:
        _send(f"@@PHASE {_CURRENT} {name}")


def _where(tb: Any) -> tuple[str, str]:
    """The deepest frame inside didcore (``file:function:line``), and the last frame."""
    frames = traceback.extract_tb(tb)
    ours = [
        f
        for f in frames
        if f"{os.sep}didcore{os.sep}" in f.filename and "/tests/" not in f.filename
    ]
    where = ""
    if ours:
        f = ours[-1]
        where = f"{f.filename.split(os.sep + 'python' + os.sep)[-1]}:{f.name}:{f.lineno}"
    last = ""
    if frames:
        f = frames[-1]
        last = f"{f.filename.split('site-packages' + os.sep)[-1]}:{f.name}:{f.lineno}"
    return where, last


def _threads_left(before: set[int]) -> list[str]:
    """Threads the case started that are still alive a moment after it returned (a reader
    thread outliving its count can abort the interpreter at exit). Threads that were already
    running (tqdm's monitor, say) are not waited for.
    """
    new = [t for t in threading.enumerate() if t.ident not in before]
    deadline = time.monotonic() + 1.0
    for t in new:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    return [t.name for t in new if t.is_alive()]


def classify(case: Case) -> dict[str, Any]:
    """Run ``case`` and classify its outcome (see :mod:`fuzz`)."""
    from didcore.errors import InputError, InternalError, UnreadableValuesWarning

    res: dict[str, Any] = {"variant": case.variant, "expect": case.expect, "detail": []}
    before = {t.ident for t in threading.enumerate()}
    _phase("run")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = case.run()
            res["outcome"] = "OK"
        except BaseException as exc:
            value = None
            if isinstance(exc, InternalError):
                res["outcome"] = "INTERNAL"
            elif isinstance(exc, InputError):
                res["outcome"] = "CLEAN"
            elif getattr(exc, "fuzz_origin", False):
                res["outcome"] = "PASSTHROUGH"  # the caller's own exception, unchanged
            else:
                res["outcome"] = "RAW"
            res["exc_type"] = f"{type(exc).__module__}.{type(exc).__qualname__}".replace(
                "builtins.", ""
            )
            res["message"] = str(exc)[:600]
            res["where"], res["last_frame"] = _where(exc.__traceback__)
            res["traceback"] = "".join(traceback.format_exception(exc))[-4000:]
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                res["detail"].append("KeyboardInterrupt/SystemExit escaped")
            if res["outcome"] == "CLEAN" and "\n" in str(exc).strip():
                res["detail"].append("the error message has several lines")
            del exc
    others = sorted(
        {w.category.__name__ for w in caught if not issubclass(w.category, UnreadableValuesWarning)}
    )
    if others:
        res["warnings"] = others
    if case.cli:
        assert isinstance(value, CliRun) or value is None
        if value is not None:
            _classify_cli(value, res)
        value = None if res["outcome"] != "OK" else value
    left = _threads_left(before)
    if left:
        res["threads_left"] = left

    if res["outcome"] == "OK":
        if case.check is not None:
            try:
                problems = case.check(value)
            except Exception as exc:  # a check failure is the harness's
                problems = []
                res["harness"] = f"check failed: {type(exc).__name__}: {exc}"[:300]
            if problems:
                res["outcome"] = "MISMATCH"
                res["detail"] += problems
        elif not case.cli:
            problems = fx.conservation_errors(value)
            if problems:
                res["outcome"] = "MISMATCH"
                res["detail"] += [f"conservation: {p}" for p in problems]
        if case.expect == "error" and res["outcome"] == "OK":
            res["outcome"] = "MISMATCH"
            res["detail"].append("accepted an input that cannot be used (expected an InputError)")
        if case.oracle is not None and case.check is None and res["outcome"] == "OK":
            _phase("ref")
            try:
                ref = case.oracle()
            except Invalid as exc:
                ref = None
                res["oracle"] = str(exc)[:300]
                if case.expect == "valid":
                    res["harness"] = f"oracle refused a valid input: {exc}"[:300]
            except Exception as exc:
                ref = None
                res["harness"] = f"oracle failed: {type(exc).__name__}: {exc}"[:300]
            if ref is not None:
                diffs = (
                    _cli_differences(value, ref) if case.cli else fx.cube_differences(value, ref)
                )
                if diffs:
                    res["outcome"] = "MISMATCH"
                    res["detail"] += diffs
    elif res["outcome"] == "CLEAN" and case.expect in ("valid", "oracle") and case.oracle:
        _phase("ref")
        try:
            case.oracle()
        except Invalid as exc:
            res["oracle"] = str(exc)[:300]
        except Exception as exc:
            res["harness"] = f"oracle failed: {type(exc).__name__}: {exc}"[:300]
        else:
            res["outcome"] = "MISMATCH"
            res["detail"].append("refused an input that pyarrow reads and the reference counts")
    return res


def _classify_cli(run: CliRun, res: dict[str, Any]) -> None:
    """Exit 0 (outputs written), or 2 with one line; 1 is an internal error; a traceback a
    raw exception; a signal a crash. A failed run must leave old outputs as they were.
    """
    res["argv"] = run.argv
    err_lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    other = [ln for ln in err_lines if not ln.startswith(("didcore: note:", "didcore: warning:"))]
    res["stderr"] = run.stderr[-3000:]
    rc = run.returncode
    res["returncode"] = rc
    if run.timed_out:
        res["outcome"] = "HANG"
        res["detail"].append("the command line ran over 120 s")
        return
    if "Traceback (most recent call last)" in run.stderr or "Exception ignored" in run.stderr:
        res["outcome"] = "RAW"
        last = next((ln for ln in reversed(err_lines) if not ln.startswith(" ")), "")
        res["exc_type"] = last.split(":")[0].strip()
        res["message"] = last[:600]
        frames = [ln.strip() for ln in err_lines if ln.strip().startswith("File ")]
        ours = [f for f in frames if "/didcore/" in f]
        res["where"] = _cli_frame(ours[-1]) if ours else ""
        res["last_frame"] = _cli_frame(frames[-1]) if frames else ""
        res["detail"].append(f"exit {rc} with a traceback")
    elif rc < 0 or rc not in (0, 1, 2, 130):
        res["outcome"] = "CRASH"
        res["exc_type"] = f"signal {-rc}" if rc < 0 else f"exit {rc}"
        res["message"] = " | ".join(err_lines[-3:])[:600]
    elif rc == 1:
        res["outcome"] = "INTERNAL"
        res["exc_type"] = "exit 1"
        res["message"] = " | ".join(err_lines)[:600]
    elif rc == 2:
        res["outcome"] = "CLEAN"
        res["exc_type"] = "exit 2"
        res["message"] = " | ".join(other)[:600]
        one = len(other) == 1 if run.lines == 1 else bool(other)
        if not one or not all(ln.startswith("didcore") for ln in other):
            res["outcome"] = "RAW"
            res["exc_type"] = "exit 2, stderr not one line"
            res["detail"].append(f"{len(other)} stderr lines besides notes")
    elif rc == 130:
        res["outcome"] = "CLEAN" if len(other) == 1 else "RAW"
    else:
        res["outcome"] = "OK"
        if other:
            res["detail"].append(f"exit 0 with stderr: {other[:2]}")
        if run.out is not None:
            problems = _cli_conservation(run.out)
            if problems:
                res["outcome"] = "MISMATCH"
                res["detail"] += problems
    if run.out is not None and run.out.parent.is_dir():
        tmp = [
            p.name
            for p in run.out.parent.iterdir()
            if p.name.startswith(f".{run.out.name[:80]}.tmp")
        ]
        if tmp:
            res["outcome"] = "MISMATCH"
            res["detail"].append(f"temporary folder left behind: {tmp}")
    if rc != 0 and run.old_files:
        changed = []
        for name, data in run.old_files.items():
            path = run.out / name if run.out is not None else None
            if path is None or not path.is_file() or path.read_bytes() != data:
                changed.append(name)
        new = sorted(
            p.name for p in (run.out.iterdir() if run.out and run.out.is_dir() else [])
            if p.name not in run.old_files
        )  # fmt: skip
        if changed or new:
            res["outcome"] = "MISMATCH"
            res["detail"].append(f"failed run left outputs changed {changed}, new {new}")


def _cli_frame(line: str) -> str:
    # 'File "/work/main/python/didcore/cli.py", line 12, in main'
    with contextlib.suppress(Exception):
        path = line.split('"')[1]
        lineno = line.split("line ")[1].split(",")[0]
        func = line.rsplit(" in ", 1)[1]
        short = path.split(os.sep + "python" + os.sep)[-1].split("site-packages/")[-1]
        return f"{short}:{func}:{lineno}"
    return line


def _read_counts(path: Path, key: str) -> dict[str, int]:
    import csv

    with path.open(newline="", encoding="utf-8") as fh:
        return {r[key]: int(r["count"]) for r in csv.DictReader(fh)}


def _cli_conservation(out: Path) -> list[str]:
    """Conservation in every ``exclusions.csv`` written (one per financial year)."""
    problems = []
    for path in sorted(out.rglob("exclusions.csv")):
        ex = _read_counts(path, "reason")
        total = sum(ex.get(r, 0) for r in ("no_icb", "no_imd", "no_sex", "no_age", "included"))
        if total != ex.get("rows_read"):
            rel = path.relative_to(out)
            problems.append(f"{rel}: rows_read {ex.get('rows_read')} != {total}")
    return problems


def _cli_differences(run: CliRun, ref: Any) -> list[str]:
    assert run.out is not None
    ex = _read_counts(run.out / "exclusions.csv", "reason")
    want = {k: ref.exclusions[k] for k in ex}
    return [] if ex == want else [f"exclusions.csv {ex} != reference {want}"]


def run_one(kind: str, seed: int, folder: Path) -> dict[str, Any]:
    """Build and classify one case (``solo`` cases run in a fresh interpreter)."""
    if folder.exists():
        subprocess.run(["chattr", "-R", "-i", str(folder)], capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if kind == "solo" or kind.startswith("solo:"):
        return _run_solo(seed, folder, kind.partition(":")[2] or None)
    _phase("gen")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case = build(kind, seed, folder)
    except Skip as exc:
        return {"outcome": "SKIP", "message": str(exc)[:300], "variant": ""}
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return {
            "outcome": "SKIP",
            "message": f"generator error {type(exc).__name__}: {exc}"[:300],
            "variant": "",
            "traceback": traceback.format_exc()[-2000:],
        }
    return classify(case)


def _run_solo(seed: int, folder: Path, inner: str | None = None) -> dict[str, Any]:
    inner = inner or solo_inner(seed)
    code = (
        f"import sys; sys.path.insert(0, {TESTS!r}); from fuzz.worker import child_main; "
        f"child_main({inner!r}, {seed}, {str(folder)!r})"
    )
    try:
        p = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
            errors="replace", check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"outcome": "HANG", "variant": f"fresh process: {inner}", "detail": ["over 120 s"]}
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("@@RESULT ")), None)
    res: dict[str, Any] = json.loads(line[9:]) if line else {"outcome": "CRASH", "detail": []}
    res["variant"] = f"fresh process: {inner}: {res.get('variant', '')}"
    res.setdefault("detail", [])
    if p.returncode != 0:
        inner_outcome = res.get("outcome") if line else "(no result)"
        res["outcome"] = "CRASH"
        res["exc_type"] = f"signal {-p.returncode}" if p.returncode < 0 else f"exit {p.returncode}"
        tail = [ln for ln in p.stderr.splitlines() if ln.strip()][-3:]
        res["message"] = f"after {inner_outcome} {res.get('message', '')[:200]} | " + " | ".join(
            tail
        )
        res["detail"].append(
            f"fresh interpreter exited {p.returncode} after outcome {inner_outcome}"
        )
    return res


def child_main(kind: str, seed: int, folder: str) -> None:
    """Run one case in this (fresh) interpreter, print its result and return normally."""
    res = run_one(kind, seed, Path(folder))
    print("@@RESULT " + json.dumps(res, default=str), flush=True)


def main() -> None:
    """The worker loop: read cases from stdin until it closes."""
    global _OUT, _CURRENT
    # our protocol keeps the real stdout; whatever the code under test prints goes to stderr
    _OUT = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        _CURRENT = str(job["id"])
        start = time.perf_counter()
        res = run_one(job["kind"], int(job["seed"]), Path(job["dir"]))
        res.update(id=job["id"], kind=job["kind"], seed=job["seed"])
        res["seconds"] = round(time.perf_counter() - start, 3)
        _send("@@RESULT " + json.dumps(res, default=str))
        _CURRENT = ""
        gc.collect()


def replay(kind: str, seed: int, folder: str | None = None) -> dict[str, Any]:
    """Re-run one case here (a reproducer): prints and returns its classification."""
    import tempfile

    where = (
        Path(folder) if folder else Path(tempfile.mkdtemp(prefix=f"fuzz-{kind}-{seed}-")) / "case"
    )
    res = run_one(kind, seed, where)
    print(json.dumps({k: v for k, v in res.items() if k != "traceback"}, indent=2, default=str))
    if "traceback" in res:
        print(res["traceback"])
    print(f"case files: {where}")
    return res


if __name__ == "__main__":
    main()
