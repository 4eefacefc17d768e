"""``python -m tests.fuzz --cases 10000 --seed 1 --report out.json [--findings DIR]``.

Runs a campaign, prints a summary by kind and outcome and each violation's signature, and
writes the JSON report; violations' inputs and a ``repro.py`` go under ``--findings``.
``--replay KIND SEED`` re-runs one case in this process (a crash then crashes here).
Exit status: 0 when no case violated the contract, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "fuzz"


def main(argv: list[str] | None = None) -> int:
    from .cases import KINDS, WEIGHTS
    from .runner import format_summary, run_campaign
    from .worker import replay

    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--report", type=Path, help="write the JSON report here")
    p.add_argument("--findings", type=Path, help="save violating cases' inputs here")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a case (x2.5 for cli/solo)")
    p.add_argument("--restart-every", type=int, default=250)
    p.add_argument("--kinds", help=f"comma-separated subset of {', '.join(WEIGHTS)}")
    p.add_argument("--nice", type=int, default=0, help="niceness of the workers")
    p.add_argument("--replay", nargs=2, metavar=("KIND", "SEED"), help="re-run one case here")
    args = p.parse_args(argv)
    if args.replay:
        kind, seed = args.replay
        if kind not in (*KINDS, "solo"):
            p.error(f"unknown kind {kind}")
        res = replay(kind, int(seed))
        return 0 if res["outcome"] in ("OK", "CLEAN", "SKIP") else 1
    kinds = [k.strip() for k in args.kinds.split(",")] if args.kinds else None
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > 30 or done == total:
            last[0] = now
            print(f"  {done}/{total} cases", file=sys.stderr, flush=True)

    report = run_campaign(
        args.cases,
        args.seed,
        jobs=args.jobs,
        timeout=args.timeout,
        restart_every=args.restart_every,
        kinds=kinds,
        findings=args.findings,
        nice=args.nice,
        progress=progress,
    )
    print(format_summary(report))
    if args.report:
        args.report.write_text(json.dumps(report, indent=1, default=str))
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
