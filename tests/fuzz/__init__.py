"""Hostile-input fuzz suite for didcore (issue 12, Deliver item 2).

Every case is built from ``(kind, seed)`` alone, so any outcome can be replayed, and runs in
a worker subprocess so that an abort or a segfault is caught and attributed:

* :mod:`fuzz.fixtures`: the small lookups every case counts against, and the comparison of a
  cube with the pure-Python reference (:mod:`didcore.reference`);
* :mod:`fuzz.strategies`: hypothesis strategies for records (clean and dirty values) and the
  Arrow layouts they may arrive in, drawn deterministically from a seed;
* :mod:`fuzz.mutate`: seeded byte-level mutation of Parquet, CSV and lookup files;
* :mod:`fuzz.cases`: the case kinds (valid sources, schema variants, mutated files, broken
  lookups, misbehaving Arrow objects, edge arguments, the command line, fresh processes);
* :mod:`fuzz.worker`: the long-lived worker that runs cases one by one and classifies them;
* :mod:`fuzz.runner`: the parent that feeds workers, enforces the per-case timeout, restarts
  a worker after a crash and writes the report and the reproducers.

Outcomes: ``OK`` (a cube: conservation holds and, where the input is valid, it equals the
reference), ``CLEAN`` (an :class:`didcore.errors.InputError`), and the violations ``RAW``
(another exception type), ``INTERNAL`` (:class:`didcore.errors.InternalError`), ``CRASH``
(a signal or exit status), ``MISMATCH`` (a count differs from the reference, conservation
fails, or bad input was silently accepted), ``HANG`` (the per-case timeout). ``SKIP`` is a
case whose generator could not build its input (counted, never a violation).
``PASSTHROUGH`` is an exception the case's own code raised (a stream, an Arrow export or a
``to_arrow()`` failing with, say, ``RuntimeError``) reaching the caller as the very same
object: didcore let the caller's error through unchanged, as ``map`` does. It is reported
apart; an error of the caller's that pyarrow re-wrapped (an ``OSError`` carrying "Python
exception: ...") is not the same object and stays ``RAW``.

Run ``python -m tests.fuzz --cases 10000 --seed 1 --report out.json`` from the repository
root for a long campaign; ``tests/test_fuzz.py`` runs a short budget in CI.
"""

from __future__ import annotations

VIOLATIONS: tuple[str, ...] = ("RAW", "INTERNAL", "CRASH", "MISMATCH", "HANG")
OUTCOMES: tuple[str, ...] = ("OK", "CLEAN", "PASSTHROUGH", *VIOLATIONS, "SKIP")
