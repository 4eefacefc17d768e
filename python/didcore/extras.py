"""The optional parts of didcore and the libraries each needs (the ``pip install`` extras).

``pip install didcore`` brings what counting needs: numpy, pyarrow, tqdm (progress bars) and
rich (the tables of ``didcore check``). That is enough for :func:`didcore.aggregate`,
:class:`didcore.Cube`, :class:`didcore.YearCubes`, the lookups, and the ``cube``, ``check``,
``lookups`` and ``synth`` commands, e.g. on a cluster's executors.

* ``didcore[stats]`` adds scipy, which the statistics need: the exact Poisson confidence
  intervals and funnel limits of :func:`didcore.standardise` (inverse incomplete gamma) and the
  chi-squared tests of :func:`didcore.rates_ratios`. scipy is imported inside the functions that
  use it.
* ``didcore[report]`` adds, with scipy, matplotlib (charts and maps), openpyxl (the Annex B
  workbook) and jinja2 (the HTML report): ``didcore report``, ``didcore demo`` and
  :func:`didcore.run_report`.
* ``didcore[spark]`` adds pyspark (3.4 or newer), for :func:`didcore.spark.aggregate` on the
  driver (a Spark cluster's executors need didcore alone: see docs/spark.md).

Using a part without its libraries raises :class:`~didcore.errors.MissingExtraError` (exit
status 2 on the command line) naming the missing modules and the ``pip install`` line.
"""

from __future__ import annotations

import importlib

from didcore.errors import MissingExtraError

__all__ = ["EXTRAS", "missing", "require"]

#: The modules each extra provides (import names, which may differ from the package names).
EXTRAS: dict[str, tuple[str, ...]] = {
    "stats": ("scipy.special",),
    "report": ("scipy.special", "matplotlib", "openpyxl", "jinja2"),
    "spark": ("pyspark",),
}


def missing(extra: str) -> list[str]:
    """The top-level names of the modules of ``extra`` that cannot be imported.

    Each is imported (not merely looked up) so that a broken install counts as missing; the
    parts that call this import them straight after anyway.
    """
    gone: list[str] = []
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            gone.append(module.split(".")[0])
    return gone


def require(extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` imports.

    ``what`` names the part being used, for the message (``"didcore report"``).
    """
    gone = missing(extra)
    if gone:
        raise MissingExtraError(
            f'{what} needs {", ".join(gone)}, not installed: pip install "didcore[{extra}]"'
        )
