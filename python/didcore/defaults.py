"""The default lookups: the national reference data shipped in ``didcore/data``.

Without ``--lookups`` (``aggregate(source)``, ``lookups=None``) didcore derives each record's
ICB, IMD quintile and measures from these tables, built from the shipped files
(:mod:`didcore.refdata`; sources and licence in ``didcore/data/ATTRIBUTION.md``):

==================  ===========================================================================
lookup              from
==================  ===========================================================================
``icb``             ``icb.csv``: the 42 ICBs of July 2022 (ODS code, name, NHS England region)
``practice_icb``    ``gp_practices.csv.gz``: the 6,445 active English GP practices of ODS
                    epraccur (early 2023) with the ICB of their commissioner (sub-ICB location)
``other_practices`` the same file's active Welsh GP practices and justice-estate prescribing
                    cost centres (prisons, YOIs, secure units, IRCs): valid codes outside the
                    English ICBs (their records are excluded as such, not as unknown codes)
``lsoa_icb``        ``lsoa11.csv.gz``: every English 2011 LSOA with its July 2022 ICB
``lsoa_imd``        the same file's IMD 2019 decile (1 = most deprived 10%)
``measures``        ``measures.csv``: the 2023/24 publication's 9 modalities and 5
                    early-diagnosis-of-cancer tests
==================  ===========================================================================

Their vintage (:data:`VINTAGE`) is carried by the :class:`~didcore.lookup.Lookups` as
``vintage`` and named in every output. ``didcore lookups --out DIR`` (:func:`write_lookups`)
writes them as an editable lookups folder that ``Lookups.read(DIR)`` reads back equal.

No population is shipped as a default: the shipped ``icb_population_mid2022.csv`` (ONS mid-2022
resident population by ICB x sex x 5-year age band) has no IMD quintile split, and the
standardisation needs ICB x sex x age band x IMD quintile; any split of it by quintile would be
a modelled estimate presented as a count, so the population file stays required.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from didcore.lookup import Lookups

__all__ = ["SHIPPED_SOURCE", "VINTAGE", "default_lookups", "default_tables", "write_lookups"]

#: ``Lookups.source`` of the default lookups.
SHIPPED_SOURCE = "didcore shipped reference data"

#: The vintage of each shipped table, as every output quotes it.
VINTAGE = (
    "ICBs July 2022 (ONS); GP practices ODS epraccur early 2023; LSOA 2011 -> ICB July 2022 "
    "(ONS); IMD 2019 (MHCLG); measures of the 2023/24 publication"
)


def default_tables() -> dict[str, pa.Table]:
    """The default lookups as tables, keyed by lookup name (the files of a lookups folder).

    The tables are built once per process (Arrow tables are immutable); the dict is new.
    """
    return dict(_default_tables())


@cache
def _default_tables() -> dict[str, pa.Table]:
    import pyarrow.compute as pc

    from didcore import refdata
    from didcore._arrow_compat import text_array, text_scalar

    practices = refdata.gp_practices()
    kind = practices.column("kind")
    # (Arrow values made from buffers: pa.array and Python scalars import pandas)
    english = practices.filter(pc.equal(kind, text_scalar("english_gp")))
    others = practices.filter(pc.is_in(kind, value_set=text_array(["welsh_gp", "justice"])))
    lsoas = refdata.lsoas()
    icbs = refdata.icbs()
    measures = refdata.read_bytes("measures.csv")
    return {
        "practice_icb": english.select(["gp_practice_code", "icb_code"]),
        "other_practices": others.select(["gp_practice_code", "kind"]),
        "lsoa_icb": lsoas.select(["lsoa11", "icb_code"]),
        "lsoa_imd": lsoas.select(["lsoa11", "imd_decile"]),
        "icb": icbs.select(["icb_code", "icb_name", "region", "region_code", "icb22cd", "icb23cd"]),
        "measures": _measures_table(measures),
    }


def _measures_table(data: bytes) -> pa.Table:
    """The shipped measures file as text columns (blank exam codes stay blank)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from didcore.lookup_files import small_table_pool

    with pacsv.open_csv(pa.py_buffer(data)) as head:
        names = list(head.schema.names)
    return pacsv.read_csv(
        pa.py_buffer(data),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
        ),
        memory_pool=small_table_pool(),
    )


@cache
def default_lookups() -> Lookups:
    """:meth:`didcore.Lookups.default`: built once per process, then shared (read-only)."""
    from didcore.lookup import Lookups

    return Lookups.from_tables(**default_tables(), source=SHIPPED_SOURCE, vintage=VINTAGE)


def readme() -> str:
    """The README.txt of a written lookups folder: what each file is, vintage, attribution."""
    from didcore import __version__, refdata

    attribution = refdata.attribution()
    quote = "\n".join(
        line[2:] if line.startswith("> ") else line[1:]
        for line in attribution.splitlines()
        if line.startswith(">")
    )
    return f"""\
didcore lookups folder (written by didcore {__version__} from its shipped reference data)

Vintage: {VINTAGE}.

Use it with `--lookups THIS_FOLDER` (or didcore.Lookups.read("THIS_FOLDER")). Edit the files
to update a code or add one; keep the header rows. Every file is CSV (UTF-8, comma-separated).
An output made with an edited folder names the folder, not this vintage.

practice_icb.csv     gp_practice_code, icb_code: active English GP practices -> ICB
other_practices.csv  gp_practice_code (kind: welsh_gp, justice): valid practices outside
                     the English ICBs (records are excluded as such, not as unknown codes)
lsoa_icb.csv         lsoa11, icb_code: English 2011 LSOAs -> ICB (used when a record has
                     no English GP practice)
lsoa_imd.csv         lsoa11, imd_decile: IMD 2019 decile, 1 = most deprived 10%
                     (imd_quintile 1..5 or imd_rank may be given instead)
measures.csv         measure, kind (modality/edoc), modality, exam_code
icb.csv              icb_code, icb_name, region (and ONS codes, for reference)
value_maps.csv       (optional, not written) column, from, to: recode extract values,
                     e.g. sex,M,1

Every file and column is described in docs/inputs.md of the didcore repository.

Sources: ONS LSOA (2011) to Sub ICB Locations to Integrated Care Boards (July 2022) lookup;
ONS Locations to ICBs to NHS England (Region) (July 2022) lookup; NHS ODS epraccur (early
2023); MHCLG English Indices of Deprivation 2019 (File 1). Licence and attribution:

{quote}
"""


def _write_csv(table: pa.Table, path: Path) -> None:
    """``table`` as CSV quoted only where a value needs it, as a spreadsheet saves it (Arrow's
    writer quotes every text value), so that a find-and-replace of ``A81001,QHM`` works.
    """
    import csv

    columns = [table.column(name).to_pylist() for name in table.column_names]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(table.column_names)
        writer.writerows(zip(*columns, strict=True))


def write_lookups(target: str | os.PathLike[str]) -> Path:
    """Write the default lookups as an editable CSV lookups folder ``target`` (with a
    README.txt giving their vintage and attribution); returns the folder.

    The folder is written beside ``target`` and moved into place
    (:func:`didcore.outputs.atomic_output_dir`).
    """
    from didcore import refdata
    from didcore.outputs import atomic_output_dir

    path = Path(target)
    with atomic_output_dir(path, kind="lookups") as tmp:  # --out checked first
        tables = default_tables()
        for name, table in tables.items():
            if name == "measures":
                # the shipped file as it is, so its order and spelling are kept
                (tmp / "measures.csv").write_bytes(refdata.read_bytes("measures.csv"))
            else:
                _write_csv(table, tmp / f"{name}.csv")
        (tmp / "README.txt").write_text(readme(), encoding="utf-8")
    return path
