"""Build the reference-data slices shipped in ``python/didcore/data/`` from ``shared/data``.

Run from the repository root: ``python tools/build_refdata.py [SHARED_DATA_DIR]`` (default
``../shared/data``). The output is deterministic (sorted rows, fixed formatting, gzip with
``mtime=0``), so re-running it on the same inputs reproduces the shipped files byte for byte.
Sources, licences and the transformations are described in ``python/didcore/data/ATTRIBUTION.md``
and ``shared/data/PROVENANCE.md``. ``publication_2023_24.json`` is not built here: it is a
transcription of the publication's tables (``shared/seed``), spot-checked by
``tests/test_recovery.py``.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections import defaultdict
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "python" / "didcore" / "data"

# Prescribing settings of the justice estate in ODS epraccur (young offender institutions,
# secure training centres, secure children's homes, immigration removal centres, police
# custody and prisons): valid practices with no English ICB, the publication's "other valid".
JUSTICE_SETTINGS = {"15", "16", "17", "18", "19", "20", "21", "22", "24", "25"}

# Publication names of the DID cancer-test groups (Table 4) -> didcore EDOC measure names.
CANCER_TESTS = {
    "Brain (MRI)": "Brain MRI",
    "Chest (X-ray)": "Chest X-ray",
    "Chest and/or abdomen (CT)": "Chest CT",
    "Kidney or Bladder (Ultrasound)": "Kidney or Bladder Ultrasound",
    "Abdomen and/or pelvis (Ultrasound)": "Abdomen or Pelvis Ultrasound",
}


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write(name: str, header: list[str], rows: list[list[object]]) -> None:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    data = buf.getvalue().encode("utf-8")
    path = OUT / name
    if name.endswith(".gz"):
        with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(data)
    else:
        path.write_bytes(data)
    print(f"{name}: {len(rows)} rows, {path.stat().st_size:,} bytes")


def build(src: Path) -> None:
    """Write every slice from the shared data folder ``src``."""
    icbs = _read(src / "icb.csv")
    _write(
        "icb.csv",
        ["icb_code", "icb22cd", "icb23cd", "icb_name", "icb_short_name", "region_code", "region"],
        sorted(
            [
                r["icb_code"],
                r["icb22cd"],
                r["icb23cd"],
                r["icb_name"],
                r["icb_short_name"],
                r["region_code"],
                r["region_name"],
            ]
            for r in icbs
        ),
    )

    practices = []
    for r in _read(src / "gp_practice_epraccur_2023.csv"):
        code, setting, status = r["practice_code"], r["prescribing_setting"], r["status_code"]
        if setting == "4" and status == "A" and r["icb_code"]:
            kind = "english_gp"
        elif setting == "4" and status == "A" and r["national_grouping"] == "W00":
            kind = "welsh_gp"
        elif setting in JUSTICE_SETTINGS and status == "A":
            kind = "justice"
        elif setting == "4" and status == "C" and code[:1] != "W":
            kind = "closed_gp"
        else:
            continue
        practices.append([code, r["icb_code"] if kind == "english_gp" else "", kind])
    _write("gp_practices.csv.gz", ["gp_practice_code", "icb_code", "kind"], sorted(practices))

    imd = {r["lsoa11cd"]: r for r in _read(src / "lsoa11_imd2019.csv")}
    lsoas = []
    for r in _read(src / "lsoa11_sicbl22_icb22.csv"):
        d = imd[r["lsoa11cd"]]
        lsoas.append(
            [
                r["lsoa11cd"],
                r["icb22cdh"],
                int(d["imd19_rank"]),
                int(d["imd19_decile"]),
                int(d["pop_mid2015_total"]),
                int(d["pop_mid2015_0_15"]),
                int(d["pop_mid2015_16_59"]),
                int(d["pop_mid2015_60plus"]),
            ]
        )
    _write(
        "lsoa11.csv.gz",
        [
            "lsoa11",
            "icb_code",
            "imd_rank",
            "imd_decile",
            "pop2015_total",
            "pop2015_0_15",
            "pop2015_16_59",
            "pop2015_60plus",
        ],
        sorted(lsoas),
    )

    _write(
        "icb_population_mid2022.csv",
        ["icb_code", "sex", "age_band", "population"],
        sorted(
            (
                [r["icb_code"], int(r["sex_code"]), r["age_band"], int(r["population"])]
                for r in _read(src / "icb_population_mid2022_sex_age5.csv")
            ),
            key=lambda x: (x[0], x[1], int(str(x[2]).split("-")[0].rstrip("+"))),
        ),
    )

    catchment = _read(src / "trust_icb_catchment_2022.csv")
    in_catchment = {r["provider_code"] for r in catchment}
    _write(
        "trust_icb_catchment_2022.csv",
        ["provider_code", "icb_code", "share"],
        sorted(
            [r["provider_code"], r["icb_code"], float(r["share_of_trust_admissions"])]
            for r in catchment
        ),
    )

    volumes: dict[tuple[str, str, str, str], float] = defaultdict(float)
    active: set[str] = set()
    for r in _read(src / "did_modality_provider_month.csv"):
        if r["fin_year"] != "2023-24":
            continue
        key = r["provider_code"] or "ENGLAND"
        volumes[(key, "modality", r["modality"], r["month"])] += float(r["count"] or 0)
        if r["provider_code"] and r["status"] != "not_submitted":
            active.add(r["provider_code"])
    for r in _read(src / "did_cancer_test_provider_month.csv"):
        if r["fin_year"] != "2023-24" or r["source_setting"] != "All":
            continue
        key = r["provider_code"] or "ENGLAND"
        volumes[(key, "edoc", CANCER_TESTS[r["test"]], r["month"])] += float(r["count"] or 0)
    _write(
        "did_volumes_2023_24.csv.gz",
        ["provider_code", "kind", "group", "month", "count"],
        sorted([*k, int(v)] for k, v in volumes.items() if v > 0),
    )

    _write(
        "did_providers.csv",
        ["provider_code", "provider_name", "region_code", "in_catchment"],
        sorted(
            [
                r["provider_code"],
                r["provider_name"],
                r["region_code"],
                int(r["provider_code"] in in_catchment),
            ]
            for r in _read(src / "did_providers.csv")
            if r["provider_code"] in active
        ),
    )


if __name__ == "__main__":
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
