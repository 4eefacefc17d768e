"""The planted parameters of the synthetic extract: the financial year and its weekly rhythm, the
ICB pattern's adjustments, the data-quality problems of Annex A and the exam codes.

Shares and multipliers, each with the publication table or reason it comes from.
"""

from __future__ import annotations

import numpy as np

from didcore.axes import BROAD_AGE_OF_BAND, N_STRATA, STRATA_SHAPE

#: Bump when the generator's output for a given (rows, seed) changes: invalidates demo caches.
SYNTH_VERSION = 2  # 2: the population file says its year

_BROAD_OF_BAND = np.array(BROAD_AGE_OF_BAND, dtype=np.int64)
_N_SEX, _N_AGE, _N_IMD = STRATA_SHAPE
_N_CELL = N_STRATA  # strata per ICB: 190

# Financial year 2023/24: 1 April 2023 .. 31 March 2024 (366 days: February 2024 is leap).
_FY_START = np.datetime64("2023-04-01", "D")
_FY_DAYS = 366
_FY_MONTHS = tuple(
    f"{y}-{m:02d}" for y, m in [*((2023, m) for m in range(4, 13)), (2024, 1), (2024, 2), (2024, 3)]
)
# Relative activity on Saturdays and Sundays (outpatient lists mostly run on weekdays).
_WEEKEND_FACTOR = (0.55, 0.45)

# ---------------------------------------------------------------------------------------------
# ICB pattern. Implied ICB activity = published provider volumes spread over ICBs by the OHID
# catchment shares; these providers are national independent-sector chains whose DID region is
# their head office, so they are spread over all ICBs by population instead.
_NATIONAL_PROVIDERS = frozenset({"NT2", "NT3", "NT4", "NT9", "NTP", "NV1", "NVC"})
# The publication divides by GP-registered lists, which exceed the ONS resident population most
# in London (list inflation, commuters treated in London trusts): without this the catchment-
# implied rates put London on top of most modalities, which the text does not describe.
_LONDON_LIST_INFLATION = 1.12
# Small regional tilts (multipliers) so the planted pattern says what section 2.2 says where the
# catchment-implied pattern alone is weaker than the text (e.g. X-ray "higher than average in
# the North East and Yorkshire, North West and Midlands", Nuclear Medicine "higher in some parts
# of the South East and East of England").
_REGION_TILT: dict[str, dict[str, float]] = {
    "X-ray": {
        "Midlands": 1.04,
        "North East and Yorkshire": 1.02,
        "North West": 1.01,
        "London": 0.98,
    },
    "CT Scan": {"London": 0.95, "North East and Yorkshire": 1.03},
    "MRI": {"South East": 1.04},
    "Nuclear Medicine": {"South East": 1.08, "East of England": 1.03},
    "PET Scan": {"South East": 1.05},
    "Brain MRI": {"South East": 1.05},
    "Chest X-ray": {
        "London": 0.94,
        "North West": 1.04,
        "Midlands": 1.03,
        "North East and Yorkshire": 1.02,
    },
    "Kidney or Bladder Ultrasound": {
        "Midlands": 1.06,
        "North East and Yorkshire": 0.97,
        "North West": 0.97,
    },
    "Abdomen or Pelvis Ultrasound": {"North West": 1.06, "London": 1.05},
}
# Lowest relative ICB rate planted (Medical Photography is near zero in most ICBs).
_ICB_FLOOR = 0.01

# ---------------------------------------------------------------------------------------------
# Data quality (Annex A). Shares are of all rows; the publication's denominators are the 47.16
# million tests of 2023/24 (DID Table 1).
_PUBLISHED_TOTAL = 47_160_300
_REASONS = ("complete", "other_valid_practice", "unknown", "no_imd", "no_sex", "no_age")
_R_COMPLETE, _R_OTHER, _R_UNKNOWN, _R_NO_IMD, _R_NO_SEX, _R_NO_AGE = range(6)
_EXCLUDED_SHARE = {
    _R_OTHER: 149_000 / _PUBLISHED_TOTAL,  # non-English or other valid practice
    _R_UNKNOWN: 126_000 / _PUBLISHED_TOTAL,  # no ICB from practice or LSOA
    _R_NO_IMD: 208_000 / _PUBLISHED_TOTAL,  # valid ICB, no deprivation from the LSOA
    _R_NO_SEX: 144_000 / _PUBLISHED_TOTAL,
    _R_NO_AGE: 500 / _PUBLISHED_TOTAL,
}
# No GP practice: Table A.1 shares by provider; every other provider gets one baseline share
# chosen so that 5.72% of complete tests have no practice: with the unrecognised practice codes
# that also fall back to the LSOA, 5.8% of all rows get their ICB from the LSOA (Annex A).
_NO_PRACTICE_SHARE = 0.0572
_NO_PRACTICE_BY_PROVIDER = {
    "RM3": 1.0, "RWF": 1.0, "REM": 0.61, "RCX": 0.26, "NT9": 0.54, "RVV": 0.14, "RN5": 0.18,
    "RJ1": 0.13, "NTP": 0.72, "RGP": 0.32, "NT4": 0.40,
}  # fmt: skip
# Unknown ICB (no practice and no LSOA): Table A.1 "of which no LSOA" as shares of all tests.
_UNKNOWN_BY_PROVIDER = {
    "RM3": 0.0115, "REM": 0.0094, "RWF": 0.0030, "RCX": 0.0006, "NT9": 0.0011, "RVV": 0.0020,
    "RN5": 0.0037, "RJ1": 0.0155, "NTP": 0.0045, "RGP": 0.0005, "NT4": 0.0,
}  # fmt: skip
# Missing sex and missing LSOA (with a valid ICB) by provider (Table A.2) and ICB (Table A.3).
_NO_SEX_BY_PROVIDER = {"RCB": 0.24, "RQ3": 0.21}
_NO_IMD_BY_PROVIDER = {"NYR": 0.30, "RJ2": 0.085, "NFO": 0.82, "RCB": 0.012, "RQ3": 0.016}
_NO_IMD_BY_ICB = {"QRV": 0.009, "QH8": 0.016, "QMM": 0.013, "QK1": 0.008}
# Welsh practices turn up at English providers near the border (relative intensity by ICB);
# justice-estate practices (prisons, YOIs, IRCs) everywhere.
_WELSH_BORDER_ICBS = {"QOC": 1.0, "QGH": 1.0, "QYG": 0.5, "QR1": 0.4, "QUY": 0.3}
_OTHER_VALID_JUSTICE_SHARE = 0.15
_UNRECOGNISED_PRACTICE_SHARE = 0.0015  # closed or pseudo practice codes, ICB from the LSOA
_CROSS_BORDER_LSOA_SHARE = 0.03  # "around 3% of patients living in a different ICB from their GP"
_SECONDARY_MISSING_SEX = 0.02  # excluded rows may carry a second, lower-precedence problem
_SECONDARY_MISSING_AGE = 0.001
_PSEUDO_PRACTICES = ("V81997", "V81998", "V81999")  # ODS pseudo codes: no registered GP known
_PSEUDO_LSOAS = ("L99999999", "M99999999")  # ONS pseudo codes: Channel Islands, Isle of Man
_N_WELSH_LSOA = 1909  # Welsh 2011 LSOAs (W01000001..): not in the English lookups
# Share of code strings written in lower case, with a leading space or a trailing space.
_CODE_VARIANTS = {
    "provider_code": (0.003, 0.0, 0.003),
    "gp_practice_code": (0.010, 0.005, 0.010),
    "lsoa11": (0.005, 0.0, 0.005),
}
_SEX_ODD_FORMS = 0.005  # " 1", "2 " and the like among valid sex codes

# Illustrative NICIP-style exam codes for the tests of each modality that are not EDOC tests
# (relative frequencies). The EDOC codes come from the measures file.
_OTHER_EXAM_CODES: dict[str, dict[str, float]] = {
    "Plain Radiography": {
        "XKNEL": 6, "XKNER": 6, "XHIPL": 4, "XHIPR": 4, "XPELV": 5, "XLSPI": 5, "XCSPI": 3,
        "XABDO": 3, "XSHOL": 4, "XSHOR": 4, "XHANL": 4, "XHANR": 4, "XWRIL": 3, "XWRIR": 3,
        "XANKL": 3, "XANKR": 3, "XFOOL": 4, "XFOOR": 4, "XOPTG": 2, "XSKUL": 1,
    },
    "Diagnostic Ultrasonography": {
        "UOBST": 20, "UOBDA": 8, "UBRES": 6, "UTHYR": 4, "UNECK": 3, "UTEST": 3, "USHOL": 4,
        "UDVTL": 6, "UCARO": 3, "UGYNT": 6, "USKIN": 2, "UHIPI": 1,
    },
    "Computerized Axial Tomography": {
        "CHEAD": 30, "CCTPA": 8, "CKUBU": 6, "CCOLO": 3, "CCORA": 4, "CSPIC": 3, "CSINU": 1,
        "CLSPI": 3, "CEXTR": 4, "CPELV": 3,
    },
    "Magnetic Resonance Imaging": {
        "MLSPI": 12, "MCSPI": 6, "MKNEL": 6, "MKNER": 6, "MSHOL": 3, "MSHOR": 3, "MPROS": 7,
        "MPELV": 5, "MBREB": 3, "MCARD": 4, "MLIVR": 4, "MIAMS": 2, "MWSPI": 2,
    },
    "Fluoroscopy": {
        "FBASW": 3, "FVIDS": 3, "FHSGU": 2, "FMCUG": 2, "FDEFP": 1, "FNJTU": 2, "FPICC": 3,
    },
    "Nuclear Medicine Procedure": {
        "NBONW": 5, "NTHYR": 2, "NRENM": 2, "NLUNV": 3, "NPARA": 1, "NGAST": 1, "NSENL": 2,
    },
    "Positron Emission Tomography": {
        "PWBOF": 10, "PPSMA": 2, "PBRAI": 1, "PCHOL": 1, "PDOTA": 1,
    },
    "Single Photon Emission Computerized Tomography": {
        "YMYOP": 6, "YDATS": 2, "YBONE": 2, "YPARA": 1,
    },
    "Medical Photography": {"ZDERM": 6, "ZWOUN": 3, "ZRETI": 2, "ZCLIN": 3},
}  # fmt: skip

# Exam codes for one sex only (0 male, 1 female): no obstetric scans of men.
_SEX_SPECIFIC_EXAMS = {
    "UOBST": 1,
    "UOBDA": 1,
    "UGYNT": 1,
    "FHSGU": 1,
    "UTEST": 0,
    "MPROS": 0,
    "PPSMA": 0,
}
# Within an EDOC, the codes in the measures file are used in falling proportions.
_EDOC_CODE_DECAY = 0.35
