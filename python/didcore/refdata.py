"""Reference data shipped with didcore (``didcore/data/``), with cached loaders.

Every loader returns a :class:`pyarrow.Table` read once per process and then cached; treat the
tables as read-only. The files are slices of UK public-sector open data under the Open
Government Licence v3.0: see ``didcore/data/ATTRIBUTION.md`` (also :func:`attribution`) for the
sources, the attribution statement to show with anything built from them, and how each file was
derived. ``tools/build_refdata.py`` rebuilds them from the project's ``shared/data`` folder.

Files and columns:

* ``icb.csv`` (:func:`icbs`): the 42 ICBs, sorted by ODS code: ``icb_code`` (ODS, e.g. ``QOQ``),
  ``icb22cd`` / ``icb23cd`` (ONS, July 2022 / April 2023), ``icb_name``, ``icb_short_name``,
  ``region_code`` (NHS England region ODS ``Y56``..``Y63``), ``region`` (region name).
* ``gp_practices.csv.gz`` (:func:`gp_practices`): ODS epraccur (early 2023) codes with ``kind``:
  ``english_gp`` (active GP practice, with its ``icb_code``), ``welsh_gp`` (active Welsh GP
  practice), ``justice`` (active prison/YOI/secure-unit/IRC prescribing cost centre) and
  ``closed_gp`` (closed English GP practice, kept as a realistic unrecognised code).
* ``lsoa11.csv.gz`` (:func:`lsoas`): every English 2011 LSOA with its July 2022 ``icb_code``,
  IMD 2019 ``imd_rank`` (1 = most deprived) and ``imd_decile`` (1 = most deprived 10%), and the
  IoD2019 mid-2015 population denominators ``pop2015_total``, ``pop2015_0_15``,
  ``pop2015_16_59``, ``pop2015_60plus`` (persons).
* ``icb_population_mid2022.csv`` (:func:`icb_population`): ONS mid-2022 resident population,
  ``icb_code`` x ``sex`` (1 male, 2 female) x ``age_band`` (``0-4`` .. ``85-89``, ``90+``).
* ``did_providers.csv`` (:func:`providers`): providers that submitted DID data in 2023-24:
  ``provider_code``, ``provider_name``, ``region_code``, ``in_catchment`` (1 when the trust is in
  the OHID catchment table).
* ``did_volumes_2023_24.csv.gz`` (:func:`did_volumes`): published DID 2023-24 monthly counts,
  ``provider_code`` (``ENGLAND`` for the national row), ``kind`` (``modality`` = DID Table 1, the
  DID modality name in ``group``; ``edoc`` = DID Table 4 "All" source settings, the didcore EDOC
  measure name in ``group``), ``month`` (``YYYY-MM``), ``count`` (tests; suppressed and
  unsubmitted cells are absent).
* ``trust_icb_catchment_2022.csv`` (:func:`catchment`): OHID acute trust catchments,
  ``provider_code``, ``icb_code``, ``share`` (share of the trust's admissions from that ICB; each
  trust's shares sum to 1).
* ``publication_2023_24.json`` (:func:`publication`): the numbers of the 2023/24 publication
  (Tables 1-2, rates-ratio Tables 1-6 with their stars, the ICB spreads the text quotes and the
  Annex A tables), used to calibrate the synthetic data and to test against.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from importlib.resources import files
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

__all__ = [
    "attribution",
    "catchment",
    "did_volumes",
    "gp_practices",
    "icb_population",
    "icbs",
    "lsoas",
    "providers",
    "publication",
    "read_bytes",
]

_STR = pa.string()


def read_bytes(name: str) -> bytes:
    """Return the raw bytes of the shipped data file ``name`` (gzip files are decompressed)."""
    data = files("didcore").joinpath("data", name).read_bytes()
    return gzip.decompress(data) if name.endswith(".gz") else data


def _csv(name: str, types: dict[str, pa.DataType]) -> pa.Table:
    # Explicit column types: codes such as ``01`` or ``E01000001`` must stay strings and empty
    # strings must stay empty strings (not nulls) so that the tables are exactly the files.
    from didcore.lookup_files import small_table_pool

    return pacsv.read_csv(
        pa.py_buffer(read_bytes(name)),
        convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
        memory_pool=small_table_pool(),
    )


@cache
def icbs() -> pa.Table:
    """The 42 ICBs (July 2022 configuration) with names and NHS England regions, by ODS code."""
    return _csv(
        "icb.csv",
        {
            "icb_code": _STR,
            "icb22cd": _STR,
            "icb23cd": _STR,
            "icb_name": _STR,
            "icb_short_name": _STR,
            "region_code": _STR,
            "region": _STR,
        },
    )


@cache
def gp_practices() -> pa.Table:
    """GP practice and other prescribing-cost-centre codes (ODS epraccur, early 2023)."""
    return _csv("gp_practices.csv.gz", {"gp_practice_code": _STR, "icb_code": _STR, "kind": _STR})


@cache
def lsoas() -> pa.Table:
    """English 2011 LSOAs: ICB (July 2022), IMD 2019 rank/decile, mid-2015 population."""
    return _csv(
        "lsoa11.csv.gz",
        {
            "lsoa11": _STR,
            "icb_code": _STR,
            "imd_rank": pa.int32(),
            "imd_decile": pa.int8(),
            "pop2015_total": pa.int32(),
            "pop2015_0_15": pa.int32(),
            "pop2015_16_59": pa.int32(),
            "pop2015_60plus": pa.int32(),
        },
    )


@cache
def icb_population() -> pa.Table:
    """ONS mid-2022 resident population by ICB x sex (1 male, 2 female) x 5-year age band."""
    return _csv(
        "icb_population_mid2022.csv",
        {"icb_code": _STR, "sex": pa.int8(), "age_band": _STR, "population": pa.int64()},
    )


@cache
def providers() -> pa.Table:
    """DID providers active in 2023-24: code, name, NHS England region, in OHID catchment."""
    return _csv(
        "did_providers.csv",
        {
            "provider_code": _STR,
            "provider_name": _STR,
            "region_code": _STR,
            "in_catchment": pa.int8(),
        },
    )


@cache
def did_volumes() -> pa.Table:
    """Published DID 2023-24 monthly test counts by provider and modality or EDOC test group."""
    return _csv(
        "did_volumes_2023_24.csv.gz",
        {
            "provider_code": _STR,
            "kind": _STR,
            "group": _STR,
            "month": _STR,
            "count": pa.int64(),
        },
    )


@cache
def catchment() -> pa.Table:
    """OHID acute trust catchments: share of each trust's admissions coming from each ICB."""
    return _csv(
        "trust_icb_catchment_2022.csv",
        {"provider_code": _STR, "icb_code": _STR, "share": pa.float64()},
    )


@cache
def _publication() -> str:
    return read_bytes("publication_2023_24.json").decode("utf-8")


def publication() -> dict[str, Any]:
    """The 2023/24 publication's numbers as a fresh dict (safe to modify)."""
    result: dict[str, Any] = json.loads(_publication())
    return result


def attribution() -> str:
    """The attribution text (Markdown) that the OGL v3 asks to show with this data."""
    return read_bytes("ATTRIBUTION.md").decode("utf-8")
