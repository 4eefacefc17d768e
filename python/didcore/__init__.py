"""didcore: standardised ICB imaging rates from NHS Diagnostic Imaging Dataset extracts.

The main entry points::

    import didcore
    years = didcore.aggregate("extract.parquet", by_year=True)  # Rust, parallel; shipped lookups
    # or didcore.aggregate("extract.parquet", "lookups/", ...) with your own (docs/inputs.md)
    cube = years[years.latest]                                  # one financial year's cube
    pop = didcore.Population.read("population.csv", cube.icb_codes, year=years.latest)
    rates = didcore.standardise(cube, pop)                      # Annex B
    ratios = didcore.rates_ratios(cube, pop)                    # section 3

Rates are per year: ``standardise`` and ``rates_ratios`` refuse a cube of several financial
years (``aggregate()`` without ``by_year=True`` counts them all into one) unless
``allow={"multiple-years"}``.

Heavy modules (scipy, matplotlib, the report) are imported on first use, so ``import
didcore`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from didcore import errors
from didcore.errors import DidcoreError, InputError

# Imported eagerly (numpy only, no scipy) because the function shares its module's name: a
# lazy export would be replaced by the module object the first time `didcore.standardise`
# the module is imported.
from didcore.standardise import StandardisedRates, standardise

try:
    from didcore._didcore import __version__ as __version__
except ImportError:  # the compiled core is missing: a source checkout without a build
    __version__ = "0+unknown"  # type: ignore[misc]

if TYPE_CHECKING:
    from didcore.cube import Cube, aggregate
    from didcore.io import Columns
    from didcore.lookup import Lookups
    from didcore.population import Population, PopulationWarning
    from didcore.ratios import rates_ratios
    from didcore.report import run_report
    from didcore.years import YearCubes

__all__ = [
    "Columns",
    "Cube",
    "DidcoreError",
    "InputError",
    "Lookups",
    "Population",
    "PopulationWarning",
    "StandardisedRates",
    "YearCubes",
    "__version__",
    "aggregate",
    "errors",
    "rates_ratios",
    "run_report",
    "standardise",
    "stats",
]

_LAZY = {
    "Cube": "didcore.cube",
    "aggregate": "didcore.cube",
    "Columns": "didcore.io",
    "Lookups": "didcore.lookup",
    "Population": "didcore.population",
    "PopulationWarning": "didcore.population",
    "rates_ratios": "didcore.ratios",
    "run_report": "didcore.report",
    "YearCubes": "didcore.years",
}


_LAZY_MODULES = {
    "stats": "didcore.stats",
    "quality": "didcore.quality",
    "synth": "didcore.synth",
    "guards": "didcore.guards",
    "check": "didcore.check",
    "spark": "didcore.spark",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'didcore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
