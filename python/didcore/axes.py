"""The fixed axes of every cube and population (docs/inputs.md)."""

from __future__ import annotations

__all__ = [
    "AGE_BANDS",
    "BROAD_AGE_BANDS",
    "BROAD_AGE_OF_BAND",
    "IMD_QUINTILES",
    "N_STRATA",
    "SEXES",
    "STRATA_SHAPE",
]

#: Sex: NHS Person Gender Code 1 (male) and 2 (female), in that order.
SEXES: tuple[str, ...] = ("male", "female")
#: The 19 five-year age bands; the last is open-ended.
AGE_BANDS: tuple[str, ...] = (*(f"{lo}-{lo + 4}" for lo in range(0, 90, 5)), "90+")
#: IMD quintiles, 1 = most deprived.
IMD_QUINTILES: tuple[int, ...] = (1, 2, 3, 4, 5)
#: The strata of every cube and population, (sex, age band, IMD quintile) = (2, 19, 5): the
#: axes after the ICB axis of ``Cube.counts`` (then measures) and ``Population.values``.
STRATA_SHAPE: tuple[int, int, int] = (len(SEXES), len(AGE_BANDS), len(IMD_QUINTILES))
#: Strata per ICB, 2 x 19 x 5 = 190: the standard's strata in indirect standardisation.
N_STRATA: int = len(SEXES) * len(AGE_BANDS) * len(IMD_QUINTILES)
#: The broad age bands the rates ratios are reported in (publication section 3).
BROAD_AGE_BANDS: tuple[str, ...] = ("0-<45", "45-<55", "55-<65", "65-<75", "75+")
#: Index into :data:`BROAD_AGE_BANDS` of each of the 19 :data:`AGE_BANDS`.
BROAD_AGE_OF_BAND: tuple[int, ...] = (0,) * 9 + (1, 1, 2, 2, 3, 3, 4, 4, 4, 4)
