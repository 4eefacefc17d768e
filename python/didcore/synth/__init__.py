"""Synthetic DID record-level extracts calibrated to the 2023/24 Standardised ICB rates publication.

:func:`write_synthetic` writes a folder that the whole pipeline can run on::

    out_dir/extract/part-00000.parquet   one row per imaging test (columns: docs/inputs.md)
    out_dir/lookups/                     practice_icb, other_practices, lsoa_icb, lsoa_imd,
                                         measures, icb (docs/inputs.md)
    out_dir/population.csv               icb_code, sex, age_band, imd_quintile, population
    out_dir/truth.json                   everything planted, and exact counts of the rows written

:func:`demo_inputs` makes (once, then caches) the embedded demo data set behind ``didcore demo``.

The model (``docs/synthetic-data.md`` has the full description and the assumptions):

* Population ``P[i, s, a, q]`` (persons): ONS mid-2022 ICB x sex x 5-year age populations, split
  into IMD quintiles with each ICB's LSOA population mix (IoD2019 mid-2015 denominators by broad
  age group), then multiplied by one scale factor so that the expected number of rows equals
  ``rows``. Scaling leaves every rate unchanged.
* Expected tests per person for measure ``m``:
  ``rate[m, i, s, a, q] = base[m] * sex[m, s] * age[m, a] * imd[m, q] * icb[m, i]``
  (the publication quotes rates per 10,000: ``rate * 10_000``). The factors are raked on the
  expected counts ``rate * P`` until the statistics of docs/statistics.md, computed exactly as the
  publication does, equal the publication: national rates (Tables 1-2), sex, deprivation and
  age rates ratios (rates-ratio Tables 1-6) and a target standardised rate for every ICB. The
  ICB targets come from the real DID 2023-24 provider volumes spread over ICBs with the OHID
  trust catchments, adjusted to the regional pattern and the spread the publication's text
  describes.
* An EDOC test is a test of its modality with one of the EDOC's exam codes: each modality's
  expected tests are split into each EDOC's expected tests and the rest, so the EDOC is a subset
  of the modality in every cell.
* Counts per cell are drawn by systematic sampling (cumulative rounding with one random offset
  per series, ordered broad age band > sex > age band > IMD quintile > ICB), which keeps every
  margin the statistics use within a count or two of its expectation: recovered national rates
  and rates ratios match the planted ones at any size, not only at tens of millions of rows.
* Data-quality problems of Annex A are planted on top: tests with no GP practice (by provider,
  most recoverable from the LSOA), Welsh and justice-estate practices ("other valid"), unknown
  ICB, missing LSOA, sex and age concentrated in the providers and ICBs Annex A names, and codes
  in mixed case or with stray spaces. Tests that the pipeline must exclude are generated in
  addition to the complete ones, so the cube keeps the planted rates.
* Rows are streamed: the per-category counts are split into row groups by multivariate
  hypergeometric draws, and each row group is expanded, shuffled, written and forgotten, so
  memory does not grow with ``rows``.

The package's modules, in the order the data flows:

* :mod:`~didcore.synth.params`: the planted parameters (financial year, ICB pattern adjustments,
  Annex A data-quality shares, exam codes) and ``SYNTH_VERSION``.
* :mod:`~didcore.synth.model`: the statistics of docs/statistics.md, the reference data and the
  calibrated model (independent of ``rows`` and ``seed``).
* :mod:`~didcore.synth.sampling`: categorical and systematic sampling, rounding, test days.
* :mod:`~didcore.synth.plan`: how many rows of each category, for a given size and seed.
* :mod:`~didcore.synth.records`: code pools and the rows of each batch.
* :mod:`~didcore.synth.tally`: exact counts of the rows written.
* :mod:`~didcore.synth.files`: the output paths, lookups, population file and truth.json.
* :mod:`~didcore.synth.api`: :func:`write_synthetic` and :func:`demo_inputs`.
"""

from __future__ import annotations

from didcore.axes import AGE_BANDS, BROAD_AGE_BANDS
from didcore.synth.api import DEMO_ROWS, DEMO_SEED, demo_inputs, write_synthetic

# _default_cache_dir and _model: internals the tests reach as didcore.synth._name (the redundant
# aliases mark them re-exported).
from didcore.synth.api import _default_cache_dir as _default_cache_dir
from didcore.synth.files import SynthPaths
from didcore.synth.model import _model as _model
from didcore.synth.model import spec_statistics
from didcore.synth.params import SYNTH_VERSION

__all__ = [
    "AGE_BANDS",
    "BROAD_AGE_BANDS",
    "DEMO_ROWS",
    "DEMO_SEED",
    "SYNTH_VERSION",
    "SynthPaths",
    "demo_inputs",
    "spec_statistics",
    "write_synthetic",
]
