"""The publication's sentences, written from the published tables.

Each function returns plain text (the HTML template escapes it). The wording follows the 2023/24
publication: the national rate, the share of ICBs within one standard deviation of the mean, the
share whose standardised rate is within 10% of the crude rate, and the regional pattern, plus
what the publication leaves to the reader (highest and lowest ICB, funnel outliers, change on the
previous year).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from didcore.report.fmt import REGION_ORDER, as_float, fmt_count, fmt_pct, fmt_rate, is_missing

__all__ = [
    "ANNEX_A4_NOT_PRODUCED",
    "RATIO_LEVEL_LABELS",
    "annex_a1_lead",
    "annex_a2_lead",
    "annex_a3_lead",
    "annex_a4_lead",
    "cluster_sentence",
    "extremes_sentence",
    "icb_label",
    "join_words",
    "measure_noun",
    "measure_paragraphs",
    "ratios_sentences",
    "spread_range",
]

_NOUNS = {
    "X-ray": "X-rays",
    "Ultrasound": "ultrasounds",
    "CT Scan": "CT scans",
    "MRI": "MRI scans",
    "Fluoroscopy": "fluoroscopy tests",
    "Nuclear Medicine": "nuclear medicine exams",
    "PET Scan": "PET scans",
    "SPECT Scan": "SPECT scans",
    "Medical Photography": "medical photography tests",
    "Brain MRI": "brain MRIs",
    "Chest X-ray": "chest X-rays",
    "Chest CT": "chest CTs",
    "Kidney or Bladder Ultrasound": "kidney or bladder ultrasounds",
    "Abdomen or Pelvis Ultrasound": "abdomen or pelvis ultrasounds",
}

#: How the rates-ratio tables label each level.
RATIO_LEVEL_LABELS: dict[str, dict[str, str]] = {
    "sex": {"female": "Female", "male": "Male"},
    "imd_quintile": {
        "1": "1 Most deprived",
        "2": "2 More deprived",
        "3": "3 Mid quintile",
        "4": "4 Less deprived",
        "5": "5 Least deprived",
    },
    "age": {
        "0-<45": "0 - <45",
        "45-<55": "45 - <55",
        "55-<65": "55 - <65",
        "65-<75": "65 - <75",
        "75+": "75+",
    },
}


def measure_noun(measure: str) -> str:
    """What one test of the measure is called in running text ("CT scans")."""
    return _NOUNS.get(measure, f"{measure} tests")


def icb_label(name: str, code: str) -> str:
    """``NHS Devon Integrated Care Board`` -> ``NHS Devon ICB`` (as the publication writes it)."""
    label = name or code
    if label.endswith(" Integrated Care Board"):
        label = label[: -len(" Integrated Care Board")] + " ICB"
    return label


def join_words(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _n_icbs(n: int) -> str:
    """``no ICB was``, ``1 ICB was``, ``3 ICBs were``."""
    if n == 0:
        return "no ICB was"
    return f"{n} ICB was" if n == 1 else f"{n} ICBs were"


def _regions(rows: Sequence[Mapping[str, Any]], national: float) -> tuple[list[str], list[str]]:
    """Regions whose ICBs average at least 5% above / below the national rate."""
    ratios: dict[str, list[float]] = {}
    for r in rows:
        if not is_missing(r.get("standardised_rate")) and national > 0:
            ratios.setdefault(r.get("region") or "", []).append(
                as_float(r["standardised_rate"]) / national
            )
    order = {name: i for i, name in enumerate(REGION_ORDER)}
    high, low = [], []
    for region in sorted(ratios, key=lambda g: (order.get(g, 99), g)):
        if not region:
            continue
        mean = sum(ratios[region]) / len(ratios[region])
        if mean >= 1.05:
            high.append(region)
        elif mean <= 0.95:
            low.append(region)
    return high, low


def cluster_sentence(rows: Sequence[Mapping[str, Any]], regions_named: Sequence[str]) -> str:
    """Where the map's top and bottom bands gather, when a region average does not say it.

    The map shows rates in five bands near the quintiles, so a reader sees a cluster when the
    fifth of ICBs with the highest (or lowest) rates sit mostly in one region, even when that
    region's average is near the national rate (a few ICBs well below offsetting them). The
    cluster is said when at least 3 and at least half of that fifth (``ceil(n / 5)`` ICBs by
    rate) are in one region, and that region holds at least 1.5 times its share of all ICBs;
    regions already named by the regional sentence (``regions_named``) are not repeated.
    """
    shown = [
        r
        for r in rows
        if not is_missing(r.get("standardised_rate")) and (r.get("region") or "").strip()
    ]
    n = len(shown)
    if n < 10:
        return ""
    k = -(-n // 5)
    ranked = sorted(shown, key=lambda r: (as_float(r["standardised_rate"]), r["icb_code"]))
    all_counts: dict[str, int] = {}
    for r in shown:
        all_counts[r["region"]] = all_counts.get(r["region"], 0) + 1
    out = []
    for which, group in (("highest", ranked[-k:]), ("lowest", ranked[:k])):
        counts: dict[str, int] = {}
        for r in group:
            counts[r["region"]] = counts.get(r["region"], 0) + 1
        region, c = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
        if region in regions_named or c < max(3, -(-k // 2)):
            continue
        if c / k < 1.5 * all_counts[region] / n:
            continue
        out.append(
            f"{c} of the {k} ICBs with the {which} rates (the {which} fifth) were in the "
            f"{region} region"
        )
    if not out:
        return ""
    return join_words(out) + "."


def spread_range(lower: Any, upper: Any) -> str:
    """The range one standard deviation either side of the mean, in words.

    ``between 3 and 28 tests per 10,000 population``; when the mean minus one SD is below zero
    (a skewed spread: a few ICBs with high rates, many near zero) no rate can be there, so the
    range is said from its top only: ``up to 28 tests per 10,000 population``. A lower bound
    that rounds to zero is said as 0.
    """
    tail = " tests per 10,000 population"
    if is_missing(upper):
        return "not known (too few ICBs with a rate)"
    if is_missing(lower) or as_float(lower) < 0:
        return f"up to {fmt_rate(upper)}{tail}"
    return f"between {fmt_rate(lower)} and {fmt_rate(upper)}{tail}"


def _named(group: Sequence[Mapping[str, Any]], most: int = 3) -> str:
    """The ICBs of a tie by name (up to ``most``), else their number: ``A and B``, ``17 ICBs``."""
    if len(group) <= most:
        return join_words([icb_label(r.get("icb_name", ""), r["icb_code"]) for r in group])
    return f"{len(group)} ICBs"


def extremes_sentence(shown: Sequence[Mapping[str, Any]], national_rate: float, noun: str) -> str:
    """The highest and lowest standardised rates, naming ties as ties.

    ICBs tie when their rates print the same (:func:`~didcore.report.fmt.fmt_rate`): several
    at the top are "shared by"; several at 0 (no tests recorded: an indirectly standardised
    rate is 0 only when the observed count is) are counted, "17 ICBs had no ... recorded",
    rather than one of them being picked as "the lowest". ``national_rate`` (per 10,000,
    > 0) gives the top's multiple of the national rate.
    """
    ranked = sorted(shown, key=lambda r: (as_float(r["standardised_rate"]), r["icb_code"]))
    top_text = fmt_rate(ranked[-1]["standardised_rate"])
    low_text = fmt_rate(ranked[0]["standardised_rate"])
    top = [r for r in reversed(ranked) if fmt_rate(r["standardised_rate"]) == top_text]
    low = [r for r in ranked if fmt_rate(r["standardised_rate"]) == low_text]
    if top_text == low_text:
        return (
            f"All {len(ranked)} ICBs with a rate had the same standardised rate, "
            f"{top_text} per 10,000."
        )
    times = as_float(ranked[-1]["standardised_rate"]) / national_rate
    if len(top) == 1:
        high = (
            f"The highest standardised rate was in {_named(top)} ({top_text} per 10,000, "
            f"{times:.1f} times the national rate)"
        )
    else:
        high = (
            f"The highest standardised rate, {top_text} per 10,000 ({times:.1f} times the "
            f"national rate), was shared by {_named(top)}"
        )
    if low_text == "0":
        if len(low) == 1:
            lowest = f"{_named(low)} had no {noun} recorded (a rate of 0)"
        elif len(low) <= 3:
            lowest = f"{len(low)} ICBs had no {noun} recorded (a rate of 0): {_named(low)}"
        else:
            lowest = f"{len(low)} ICBs had no {noun} recorded (a rate of 0)"
        return f"{high}; {lowest}."
    if len(low) == 1:
        return f"{high} and the lowest in {_named(low)} ({low_text})."
    return f"{high}; the lowest, {low_text} per 10,000, was shared by {_named(low)}."


def _none_listed(what: str, share: float, count: int, about: str, table: str) -> str:
    return (
        f"No {what} had more than {share:.0%} and {count:,} {about}, so Table {table} lists none."
    )


def annex_a1_lead(n_rows: int, share: float, count: int) -> str:
    """Table A.1's lead: the providers with many tests without a GP practice, or none."""
    about = "imaging tests with no GP practice"
    if n_rows == 0:
        return _none_listed("provider", share, count, about, "A.1")
    return (
        f"Providers with more than {share:.0%} and {count:,} {about} are listed in Table A.1 "
        f"({n_rows} provider{'s' if n_rows != 1 else ''})."
    )


def annex_a2_lead(n_rows: int, share: float, count: int) -> str:
    """Table A.2's lead: the providers with many tests missing age, sex or LSOA, or none."""
    about = "imaging tests with no age, sex or LSOA (to impute deprivation)"
    if n_rows == 0:
        return _none_listed("provider", share, count, about, "A.2")
    return f"Providers with more than {share:.0%} and {count:,} {about} are listed in Table A.2."


def annex_a3_lead(n_rows: int, share: float, count: int) -> str:
    """Table A.3's lead: the ICBs most affected by missing age, sex or LSOA, or none."""
    if n_rows == 0:
        return _none_listed("ICB", share, count, "imaging tests with no age, sex or LSOA", "A.3")
    return "The ICBs most affected by the omission of LSOA, sex or age are listed in Table A.3."


def annex_a4_lead(n_rows: int, share: float, count: int) -> str:
    """Table A.4's lead: how providers' missing records reach ICBs, and which ICBs, or none."""
    text = (
        "Some ICBs have reduced rates because of shortfalls in the data submissions of their "
        "providers. Each provider's estimated missing records were allocated to ICBs in "
        "proportion to the ICBs of the tests it did submit; "
    )
    if n_rows == 0:
        return text + (
            f"no ICB had more than {share:.0%} and {count:,} estimated missing imaging tests, "
            "so Table A.4 lists none."
        )
    return text + "the ICBs most affected are listed in Table A.4."


#: Said in place of Table A.4 when no provider-missing file was given, so the gap is explained.
ANNEX_A4_NOT_PRODUCED = (
    "Table A.4 (ICBs with reduced rates because of shortfalls in their providers' data "
    "submissions) was not produced: no estimate of providers' missing records was given. To "
    "produce it, run didcore report with --provider-missing FILE, a CSV of each provider's "
    "estimated missing records (provider_code, missing_records; see docs/report.md)."
)


def measure_paragraphs(
    measure: str,
    number: int,
    rows: Sequence[Mapping[str, Any]],
    national: Mapping[str, Any],
    summary: Mapping[str, Any] | None,
    *,
    previous_period: str | None = None,
) -> list[str]:
    """The text for one measure's section: pattern, national rate and spread, extremes."""
    rate = national.get("rate_per_10000")
    n_rate = 0.0 if is_missing(rate) else as_float(rate)
    noun = measure_noun(measure)
    out: list[str] = []
    high, low = _regions(rows, n_rate)
    if high or low:
        parts = []
        if high:
            parts.append(
                f"higher than average in ICBs in the {join_words(high)} "
                f"region{'s' if len(high) > 1 else ''}"
            )
        if low:
            parts.append(f"lower in the {join_words(low)} region{'s' if len(low) > 1 else ''}")
        out.append(
            f"There was some regional variation in {measure} rates (Map {number} and Graph "
            f"{number}), with rates generally {' and '.join(parts)}."
        )
    else:
        out.append(
            f"{measure} rates showed little consistent regional variation (Map {number} and "
            f"Graph {number})."
        )
    cluster = cluster_sentence(rows, high + low)
    if cluster:
        out.append(cluster)
    text = f"The national rate was {fmt_rate(rate)} {noun} per 10,000 registered population"
    if summary and not is_missing(summary.get("share_within_1sd")):
        text += (
            f" and {100 * as_float(summary['share_within_1sd']):.0f}% of ICBs were within one "
            "standard deviation of the mean, that is "
            + spread_range(summary.get("lower_1sd"), summary.get("upper_1sd"))
        )
    out.append(text + ".")
    if summary and not is_missing(summary.get("share_within_10pct_of_crude")):
        out.append(
            f"{100 * as_float(summary['share_within_10pct_of_crude']):.0f}% of ICBs had a "
            "standardised rate within 10% of their crude rate."
        )
    shown = [r for r in rows if not is_missing(r.get("standardised_rate"))]
    if shown:
        if n_rate > 0:
            out.append(extremes_sentence(shown, n_rate, noun))
        n_high = sum(r.get("funnel_998") == "high" for r in shown)
        n_low = sum(r.get("funnel_998") == "low" for r in shown)
        out.append(
            f"On the funnel plot, {_n_icbs(n_high)} above the 99.8% control limits and "
            f"{n_low or 'none'} below."
        )
    suppressed = sum(bool(r.get("suppressed")) for r in rows)
    if suppressed:
        out.append(
            f"{suppressed} ICB rate{'s are' if suppressed != 1 else ' is'} suppressed under "
            "disclosure control."
        )
    prev = national.get("previous_rate_per_10000")
    pct = national.get("change_pct")
    if previous_period and not is_missing(prev) and not is_missing(pct):
        change_pct = as_float(pct)
        direction = "higher" if change_pct > 0 else "lower" if change_pct < 0 else "the same as"
        out.append(
            f"The national rate was {abs(change_pct):.1f}% {direction} than in {previous_period} "
            f"({fmt_rate(prev)} per 10,000)."
            if direction != "the same as"
            else f"The national rate was the same as in {previous_period}."
        )
    return [p for p in out if p]


def ratios_sentences(
    ratios: Sequence[Mapping[str, Any]], measures: Sequence[str]
) -> dict[str, str]:
    """One summary sentence per factor, naming the measures with significant ratios."""
    by: dict[tuple[str, str, str], Mapping[str, Any]] = {
        (r["factor"], str(r["level"]), r["measure"]): r for r in ratios
    }

    def starred(factor: str, level: str, m: str) -> bool:
        r = by.get((factor, level, m))
        return bool(r and r.get("stars"))

    sex = [m for m in measures if starred("sex", "male", m)]
    out = {
        "sex": (
            f"Of the sex rates ratios, those for {join_words(sex)} "
            f"{'were' if len(sex) > 1 else 'was'} found to be significant."
            if sex
            else "None of the sex rates ratios was found to be significant."
        )
    }
    all_levels = [m for m in measures if all(starred("imd_quintile", q, m) for q in "2345")]
    least = [m for m in measures if starred("imd_quintile", "5", m) and m not in all_levels]
    text = (
        f"Deprivation had a significant impact at all levels for {join_words(all_levels)}"
        if all_levels
        else "Deprivation had no significant impact at every level for any measure"
    )
    if least:
        text += (
            f", and the least deprived quintile was significantly different from the most "
            f"deprived for {join_words(least)}"
        )
    out["imd_quintile"] = text + "."
    old = [m for m in measures if starred("age", "65-<75", m) and starred("age", "75+", m)]
    count = (
        f"All {len(measures)}"
        if len(old) == len(measures)
        else f"{len(old)} of the {len(measures)}"
    )
    out["age"] = (
        f"Age has a large impact on imaging rates. {count} measures have a significant result "
        "for both age bands from 65 (65 - <75 and 75+) compared with age under 45."
    )
    return out


def exclusion_sentence(figures: Mapping[str, Any]) -> str:
    """How many records the rates leave out, as the method section says it."""
    removed = sum(int(figures.get(k, 0)) for k in ("no_icb", "no_imd", "no_sex", "no_age"))
    total = int(figures.get("rows_read", 0))
    pct = 100.0 * removed / total if total else 0.0
    return (
        "Cases that did not have full completeness for all these fields were removed: "
        f"{fmt_count(removed)} ({fmt_pct(pct)}) of {fmt_count(total)} records read."
    )
