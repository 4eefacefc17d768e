"""The publication's outputs: CSV tables, the Annex B workbook, charts, maps and the HTML report.

Entry points (imported on first use, so ``import didcore.report`` is cheap)::

    from didcore.report import run_report
    result = run_report(["extract.parquet"], lookups="lookups/", population="pop.csv",
                        out_dir="report/")
    print(result.summary)

See ``docs/report.md`` for what each output holds, the disclosure-control rule and the Annex A
thresholds.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from didcore.report.disclosure import DisclosureRule
    from didcore.report.pipeline import ALL_FORMATS, ReportResult, run_report, write_report
    from didcore.report.tables import ReportInputs, build_tables

__all__ = [
    "ALL_FORMATS",
    "DisclosureRule",
    "ReportInputs",
    "ReportResult",
    "build_tables",
    "run_report",
    "write_report",
]

_LAZY = {
    "ALL_FORMATS": "didcore.report.pipeline",
    "ReportResult": "didcore.report.pipeline",
    "run_report": "didcore.report.pipeline",
    "write_report": "didcore.report.pipeline",
    "DisclosureRule": "didcore.report.disclosure",
    "ReportInputs": "didcore.report.tables",
    "build_tables": "didcore.report.tables",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'didcore.report' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
