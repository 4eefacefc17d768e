"""The guards' names, thresholds and verdicts, and what their messages share.

The thresholds are module constants (re-exported by :mod:`didcore.guards`, where the docs name
them) and the defaults of :class:`GuardThresholds`; :func:`check_allow` checks the names given to
``--allow`` / ``allow=``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from didcore.errors import InputError
from didcore.profile import ValueProfile

#: Every guard's name, as ``--allow NAME`` and ``allow={...}`` take it.
GUARDS: tuple[str, ...] = (
    "sex-coding",
    "modality-coding",
    "exclusions",
    "no-measure",
    "population-icbs",
    "population-strata",
    "population-year",
    "empty-measure",
    "multiple-years",
)

#: Share of rows whose sex or modality is coded otherwise above which the coding guards trip.
CODING_SHARE = 0.01
#: Share of rows read above which one exclusion reason (or no test date) trips ``exclusions``.
EXCLUSION_SHARE = 0.05
#: Share of included records in no measure above which ``no-measure`` trips.
NO_MEASURE_SHARE = 0.05
#: Share of counted tests in zero-population strata above which ``population-strata`` trips.
#: Not zero: a practice's ICB and a patient's home LSOA (its IMD quintile) may put a few tests
#: in a stratum where the ICB has no residents; a population missing whole strata is far above.
STRATA_SHARE = 0.005
#: Share of the first batch's rows coded otherwise that stops a run before the rest is read.
EARLY_SHARE = 0.5
#: Sex 0, 9 and blank are ordinary missing values (left out of the ``exclusions`` guard's
#: no-sex share) up to this share of rows; beyond it they are another coding (``0``/``1``) or
#: an empty column, and ``sex-coding`` trips. (In the DID they are well under 1%.)
MISSING_SEX_SHARE = 0.2
#: Included records in a year from which a measure with no test at all trips
#: ``empty-measure``. The rarest published measure (SPECT) is about 1 test in 1,000, so at
#: 100,000 records an empty one is a coding (SPECT folded into ``NM``, exam codes spelt
#: otherwise), not chance.
EMPTY_MEASURE_MIN_RECORDS = 100_000


@dataclass(frozen=True)
class GuardThresholds:
    """The guards' thresholds (shares, 0..1); the defaults are the module constants."""

    coding_share: float = CODING_SHARE
    exclusion_share: float = EXCLUSION_SHARE
    no_measure_share: float = NO_MEASURE_SHARE
    strata_share: float = STRATA_SHARE
    early_share: float = EARLY_SHARE
    missing_sex_share: float = MISSING_SEX_SHARE

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not 0 <= value <= 1:
                raise InputError(
                    f"GuardThresholds.{name} must be a share from 0 to 1, not {value!r}"
                )


@dataclass(frozen=True)
class Verdict:
    """One guard's outcome: ``status`` is ``"pass"``, ``"fail"`` or ``"allowed"`` (tripped,
    overridden); ``message`` the one line it gave when it tripped.
    """

    guard: str
    status: str
    message: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready: guard, status, message."""
        return {"guard": self.guard, "status": self.status, "message": self.message}


_DEFAULT = GuardThresholds()


def _thresholds(thresholds: GuardThresholds | None) -> GuardThresholds:
    if thresholds is None:
        return _DEFAULT
    if not isinstance(thresholds, GuardThresholds):
        raise InputError(
            "guard thresholds must be a didcore.guards.GuardThresholds, not "
            f"{type(thresholds).__name__}"
        )
    return thresholds


def _share(n: float, total: float) -> str:
    return f"{100 * n / total:.1f}%" if total else "0%"


def _rows(profile: ValueProfile) -> str:
    """``"rows"``, or for the early guards' profile of the first batch what it covers."""
    return "the first rows read" if profile.early else "rows"


def _norm(value: str | None) -> str:
    from didcore.codes import normalise_text

    return normalise_text(value or "")


def _allowed(allow: Iterable[str] | str | None) -> frozenset[str]:
    if allow is None:
        return frozenset()
    if isinstance(allow, str):  # one name
        return frozenset([allow])
    try:
        return frozenset(str(a) for a in allow)
    except TypeError:
        raise InputError(
            f"allow must be guard names, e.g. {{'sex-coding'}}; got {type(allow).__name__}"
        ) from None


def check_allow(allow: Iterable[str] | None) -> frozenset[str]:
    """``allow`` as a set of guard names; an unknown name is an :class:`InputError`."""
    names = _allowed(allow)
    unknown = sorted(names - set(GUARDS))
    if unknown:
        raise InputError(
            f"--allow {', '.join(unknown)}: no such guard; the guards are {', '.join(GUARDS)}"
        )
    return names
