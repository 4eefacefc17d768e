"""The fuzz runner: feeds cases to worker subprocesses, times them out, restarts a worker
after a crash (recording the case it was running), and writes the report and reproducers.

A worker runs many cases (imports paid once) and is replaced every ``restart_every`` cases;
its own exit status is checked then, because an abort at interpreter teardown (a reader
thread left running) belongs to the batch it ran. ``solo`` cases run in a fresh interpreter
each, inside the worker, so such an abort is also pinned to one case.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import VIOLATIONS
from .cases import pick_kind

TESTS = Path(__file__).resolve().parent.parent
BOOT = f"import sys; sys.path.insert(0, {str(TESTS)!r}); from fuzz.worker import main; main()"


def case_seed(campaign_seed: int, i: int) -> int:
    """The seed of case ``i`` of a campaign (distinct across campaigns and cases)."""
    return (campaign_seed * 1_000_003 + i) % (2**62)


@dataclass
class _Worker:
    index: int
    root: Path
    nice: int
    proc: subprocess.Popen[bytes] | None = None
    buf: bytes = b""
    job: dict[str, Any] | None = None
    phase: str = ""
    deadline: float = 0.0
    done: int = 0
    batch: list[tuple[str, int]] = field(default_factory=list)
    stderr_path: Path | None = None

    def start(self) -> None:
        self.stderr_path = self.root / f"worker{self.index}.stderr"
        err = self.stderr_path.open("wb")
        nice = self.nice

        def pre() -> None:
            os.setsid()
            if nice:
                os.nice(nice)

        env = {**os.environ, "RUST_BACKTRACE": "0", "PYTHONFAULTHANDLER": "1"}
        env.pop("DIDCORE_FUZZ_CASES", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BOOT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            preexec_fn=pre,
            env=env,
            cwd=str(TESTS.parent),
        )
        err.close()
        self.buf = b""
        self.done = 0
        self.batch = []

    def send(self, job: dict[str, Any], timeout: float) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.job = job
        self.phase = "sent"
        self.deadline = time.monotonic() + timeout
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()

    def stderr_tail(self, n: int = 6) -> list[str]:
        if self.stderr_path is None or not self.stderr_path.exists():
            return []
        data = self.stderr_path.read_bytes()[-8000:].decode("utf-8", "replace")
        lines = [ln for ln in data.splitlines() if ln.strip() and not ln.startswith("  ")]
        return lines[-n:]

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def stop(self, timeout: float = 30.0) -> int | None:
        """Close stdin and wait for a normal exit; returns the exit status."""
        if self.proc is None:
            return None
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.close()
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -999
        except BrokenPipeError:
            rc = self.proc.wait()
        self.proc = None
        return rc


def _signature(res: dict[str, Any]) -> str:
    """A root-cause key: outcome, exception type, didcore frame, and the message's shape."""
    msg = res.get("message") or "; ".join(res.get("detail") or [])
    msg = re.sub(r"/[^\s'\"]+", "<path>", msg)
    msg = re.sub(r"'[^']*'|\"[^\"]*\"", "<v>", msg)
    msg = re.sub(r"\d+", "N", msg)[:70]
    where = (res.get("where") or res.get("last_frame") or "").rsplit(":", 1)[0]
    return f"{res['outcome']} | {res.get('exc_type', '')} | {where} | {msg}"


def run_campaign(
    n_cases: int,
    seed: int,
    *,
    jobs: int = 1,
    timeout: float = 60.0,
    restart_every: int = 250,
    kinds: list[str] | None = None,
    findings: Path | None = None,
    examples_per_signature: int = 3,
    nice: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run ``n_cases`` cases of campaign ``seed``; returns the report (see :func:`summary`)."""
    root = Path(tempfile.mkdtemp(prefix="didcore-fuzz-"))
    workers = [_Worker(i, root, nice) for i in range(max(1, jobs))]
    for w in workers:
        w.start()
    pending = [
        {"id": i, "kind": pick_kind(case_seed(seed, i), kinds), "seed": case_seed(seed, i)}
        for i in range(n_cases)
    ]
    pending.reverse()
    results: list[dict[str, Any]] = []
    saved: Counter[str] = Counter()
    start = time.monotonic()

    def record(w: _Worker, res: dict[str, Any]) -> None:
        res.setdefault("detail", [])
        results.append(res)
        if res["outcome"] in VIOLATIONS and findings is not None:
            sig = _signature(res)
            if saved[sig] < examples_per_signature:
                saved[sig] += 1
                res["saved"] = str(_save(findings, res, Path(w.job["dir"]) if w.job else None))
        if progress is not None:
            progress(len(results), n_cases)

    def restart(w: _Worker, *, check_exit: bool) -> None:
        if check_exit:
            rc = w.stop()
            if rc not in (0, None):
                batch = list(w.batch)
                res = {
                    "id": -1,
                    "kind": "worker_exit",
                    "seed": batch[-1][1] if batch else 0,
                    "variant": f"worker exit after {len(batch)} cases",
                    "outcome": "CRASH",
                    "exc_type": f"signal {-rc}" if rc < 0 else f"exit {rc}",
                    "message": " | ".join(w.stderr_tail(3)),
                    "detail": [f"cases of the batch: {batch[-20:]}"],
                }
                w.job = None
                record(w, res)
        else:
            w.kill()
        w.start()

    while pending or any(w.job for w in workers):
        for w in workers:
            if w.job is None and pending:
                job = pending.pop()
                job["dir"] = str(root / f"w{w.index}" / "case")
                w.batch.append((job["kind"], job["seed"]))
                slow = job["kind"] == "cli" or job["kind"].startswith("solo")
                w.send(job, timeout * (2.5 if slow else 1))
        busy = [w for w in workers if w.job is not None]
        if not busy:
            break
        wait = max(0.0, min(w.deadline for w in busy) - time.monotonic())
        fds = {w.proc.stdout.fileno(): w for w in busy if w.proc and w.proc.stdout}
        ready, _, _ = select.select(list(fds), [], [], min(wait, 5.0))
        for fd in ready:
            w = fds[fd]
            chunk = os.read(fd, 1 << 16)
            if not chunk:  # the worker died mid-case
                assert w.proc is not None and w.job is not None
                rc = w.proc.wait()
                job = w.job
                res = {
                    **{k: job[k] for k in ("id", "kind", "seed")},
                    "variant": "",
                    "outcome": "CRASH" if w.phase in ("run", "sent") else "HARNESS_CRASH",
                    "exc_type": f"signal {-rc}" if rc < 0 else f"exit {rc}",
                    "message": " | ".join(w.stderr_tail(4)),
                    "detail": [f"worker died in phase {w.phase}"],
                }
                if w.phase == "gen":
                    res["outcome"] = "SKIP"
                record(w, res)
                w.job = None
                w.proc = None
                w.start()
                continue
            w.buf += chunk
            while b"\n" in w.buf:
                line, w.buf = w.buf.split(b"\n", 1)
                text = line.decode("utf-8", "replace")
                if text.startswith("@@PHASE "):
                    w.phase = text.split()[-1]
                elif text.startswith("@@RESULT "):
                    res = json.loads(text[9:])
                    record(w, res)
                    w.job = None
                    w.done += 1
                    if w.done >= restart_every:
                        restart(w, check_exit=True)
        now = time.monotonic()
        for w in workers:
            if w.job is not None and now > w.deadline:
                job = w.job
                res = {
                    **{k: job[k] for k in ("id", "kind", "seed")},
                    "variant": "",
                    "outcome": "HANG" if w.phase in ("run", "sent") else "HARNESS_HANG",
                    "exc_type": "timeout",
                    "message": f"over {timeout:.0f} s in phase {w.phase}",
                    "detail": [],
                }
                record(w, res)
                w.job = None
                restart(w, check_exit=False)
    for w in workers:
        restart_rc = w.stop()
        if restart_rc not in (0, None):
            w.job = None
            record(
                w,
                {
                    "id": -1,
                    "kind": "worker_exit",
                    "seed": w.batch[-1][1] if w.batch else 0,
                    "variant": f"worker exit after {len(w.batch)} cases",
                    "outcome": "CRASH",
                    "exc_type": f"signal {-restart_rc}" if restart_rc < 0 else f"exit {restart_rc}",
                    "message": " | ".join(w.stderr_tail(3)),
                    "detail": [f"cases of the batch: {w.batch[-20:]}"],
                },
            )
    elapsed = time.monotonic() - start
    report = summary(results, seed=seed, n_cases=n_cases, elapsed=elapsed)
    subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)
    return report


def _save(findings: Path, res: dict[str, Any], case_dir: Path | None) -> Path:
    """Copy the case's input files and write ``case.json`` and ``repro.py``."""
    target = findings / f"{res['outcome']}-{res['kind']}-{res['seed']}"
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    if case_dir is not None and case_dir.is_dir():
        subprocess.run(["chattr", "-R", "-i", str(case_dir)], capture_output=True, check=False)
        for p in case_dir.iterdir():
            dest = target / p.name
            try:
                if p.is_dir():
                    shutil.copytree(p, dest)
                elif p.is_file() and p.stat().st_size < 5_000_000:
                    shutil.copy2(p, dest)
            except OSError:
                pass
    (target / "case.json").write_text(json.dumps(res, indent=2, default=str))
    kind = res["kind"]
    (target / "repro.py").write_text(
        "# Re-run this fuzz case (from the repository root): python "
        + str(target / "repro.py")
        + "\n"
        "# The input files the case was built from are beside this file; the case is rebuilt\n"
        "# from its seed, so the same files are written again in a scratch folder.\n"
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from fuzz.worker import replay\n\n"
        f"replay({kind!r}, {res['seed']})\n"
    )
    return target


def summary(
    results: list[dict[str, Any]], *, seed: int, n_cases: int, elapsed: float
) -> dict[str, Any]:
    """The report: counts by kind and outcome, violations grouped by signature."""
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for r in results:
        by_kind[r["kind"]][r["outcome"]] += 1
    violations = [r for r in results if r["outcome"] in VIOLATIONS]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in violations:
        groups[_signature(r)].append(r)
    signatures = [
        {
            "signature": sig,
            "count": len(rs),
            "kinds": dict(Counter(r["kind"] for r in rs)),
            "example": {
                k: rs[0].get(k)
                for k in (
                    "kind",
                    "seed",
                    "variant",
                    "exc_type",
                    "message",
                    "where",
                    "last_frame",
                    "detail",
                    "saved",
                )
            },
            "seeds": [(r["kind"], r["seed"]) for r in rs[:10]],
            "saved": [r["saved"] for r in rs if r.get("saved")],
        }
        for sig, rs in sorted(groups.items(), key=lambda kv: -len(kv[1]))
    ]
    skips = Counter(
        (r["kind"], (r.get("message") or "")[:90]) for r in results if r["outcome"] == "SKIP"
    )
    harness = Counter((r["kind"], r["harness"][:120]) for r in results if r.get("harness"))
    threads = Counter(r["kind"] for r in results if r.get("threads_left"))
    outcomes = Counter(r["outcome"] for r in results)
    seconds: dict[str, list[float]] = defaultdict(list)
    for r in results:
        if "seconds" in r:
            seconds[r["kind"]].append(r["seconds"])
    return {
        "mean_seconds_by_kind": {k: round(sum(v) / len(v), 3) for k, v in sorted(seconds.items())},
        "seed": seed,
        "cases": n_cases,
        "results": len(results),
        "elapsed_seconds": round(elapsed, 1),
        "outcomes": dict(outcomes),
        "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "violations": len(violations),
        "signatures": signatures,
        "skips": [{"kind": k, "reason": m, "count": n} for (k, m), n in skips.most_common(30)],
        "harness_notes": [
            {"kind": k, "note": m, "count": n} for (k, m), n in harness.most_common(30)
        ],
        "threads_left_by_kind": dict(threads),
        "violation_cases": [
            {k: v for k, v in r.items() if k not in ("traceback",)} for r in violations
        ],
    }


def format_summary(report: dict[str, Any]) -> str:
    """A text table of the report: kinds x outcomes, then each violation signature."""
    from . import OUTCOMES

    cols = [o for o in OUTCOMES if report["outcomes"].get(o)] + sorted(
        o for o in report["outcomes"] if o not in OUTCOMES
    )
    lines = [
        f"didcore fuzz: seed {report['seed']}, {report['results']} results of "
        f"{report['cases']} cases in {report['elapsed_seconds']} s",
        f"{'kind':<16}" + "".join(f"{c:>10}" for c in cols),
    ]
    for kind, counts in report["by_kind"].items():
        lines.append(f"{kind:<16}" + "".join(f"{counts.get(c, 0):>10}" for c in cols))
    lines.append(f"{'total':<16}" + "".join(f"{report['outcomes'].get(c, 0):>10}" for c in cols))
    lines.append(f"violations: {report['violations']} in {len(report['signatures'])} signatures")
    for s in report["signatures"]:
        ex = s["example"]
        lines.append(f"  [{s['count']}] {s['signature']}")
        lines.append(f"      e.g. {ex['kind']} seed {ex['seed']}: {ex.get('variant') or ''}"[:200])
        if ex.get("message"):
            lines.append(f"      {ex['message']}"[:240])
        if ex.get("detail"):
            lines.append(f"      {'; '.join(ex['detail'])}"[:240])
        if ex.get("saved"):
            lines.append(f"      saved: {ex['saved']}")
    if report["skips"]:
        lines.append("skipped (generator could not build the input):")
        lines += [f"  {s['count']:>5} {s['kind']}: {s['reason']}" for s in report["skips"][:8]]
    if report["harness_notes"]:
        lines.append("harness notes:")
        lines += [
            f"  {h['count']:>5} {h['kind']}: {h['note']}" for h in report["harness_notes"][:8]
        ]
    return "\n".join(lines)
