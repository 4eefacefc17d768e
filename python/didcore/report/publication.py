"""The publication's fixed lines (version, contact, footnotes) and Annex A rounding, from a file.

The defaults ship in ``didcore/data/publication.toml`` (those of NHS England's 2023/24
publication). A user's file, given with ``--publication-config FILE`` or
``run_report(publication_config=FILE)``, holds only the keys it changes: each key it gives
replaces the default's whole value (a list of footnotes is replaced, not appended to). The keys
are documented in docs/report.md ("The publication file").

Text may carry the placeholders ``{period}`` and ``{excluded_pct}``, filled by
:meth:`PublicationConfig.text`; any other ``{name}`` is refused when the file is read, so a typo
is caught before the extract is counted, not after.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from didcore.errors import InputError

__all__ = ["PLACEHOLDERS", "PublicationConfig", "load_publication_config"]

#: The placeholders text in the file may use.
PLACEHOLDERS: tuple[str, ...] = ("period", "excluded_pct")

# key -> kind, for checking a user's file: "text", "lines" (list of text), "count" (int >= 1)
_SCHEMA: dict[str, Any] = {
    "version": "text",
    "contact": {"feedback": "lines", "websites": "lines", "additional": "lines"},
    "footnotes": {
        "national_rates": "lines",
        "edoc": "lines",
        "rates_ratios": "lines",
        "age": "lines",
        "annex_a": "lines",
        "annex_b": "lines",
    },
    "rounding": {
        "a1": "count",
        "a2_total": "count",
        "a2_missing": "count",
        "a3_total": "count",
        "a3_missing": "count",
        "a4_total": "count",
        "a4_missing": "count",
    },
}


@dataclass(frozen=True)
class PublicationConfig:
    """The publication's fixed lines and Annex A rounding (see the module docstring).

    ``contact`` maps ``feedback``/``websites``/``additional`` to paragraphs; ``footnotes`` maps
    a table family (``national_rates``, ``edoc``, ``rates_ratios``, ``age``, ``annex_a``,
    ``annex_b``) to its notes; ``rounding`` maps an Annex A column group (``a1``, ``a2_total``,
    ...) to the unit its counts are rounded to (1 = exact). ``source`` names the file read
    (``None`` for the shipped defaults alone).
    """

    version: str
    contact: Mapping[str, tuple[str, ...]]
    footnotes: Mapping[str, tuple[str, ...]]
    rounding: Mapping[str, int]
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def text(self, line: str, **values: Any) -> str:
        """``line`` with its placeholders filled; a placeholder not given is left as written."""
        known = {k: values[k] for k in PLACEHOLDERS if k in values and values[k] is not None}
        return string.Formatter().vformat(line, (), _Keep(known))

    def scaled(self, factor: float) -> PublicationConfig:
        """The same lines with Annex A's rounding units scaled by ``factor`` (an extract that
        is a fraction of a national year, as :meth:`QualityThresholds.scaled` scales the
        thresholds), each to the largest of 1, 2, 5, 10, 20, 50, ... not above it, so rounding
        to the nearest 1,000 does not turn a demo's few hundred tests into 0.
        """
        import math

        def nice(unit: int) -> int:
            target = unit * factor
            if target < 2:
                return 1
            power = 10 ** math.floor(math.log10(target))
            return max(m * power for m in (1, 2, 5) if m * power <= target)

        from dataclasses import replace

        return replace(self, rounding={k: nice(v) for k, v in self.rounding.items()})

    def footnotes_for(self, key: str, **values: Any) -> list[str]:
        """The footnotes of a table family, placeholders filled."""
        return [self.text(line, **values) for line in self.footnotes.get(key, ())]

    def contact_lines(self) -> list[tuple[str, list[str]]]:
        """("Feedback" | "Websites" | "Additional information", paragraphs), in the
        publication's order, leaving out empty ones.
        """
        heads = (
            ("feedback", "Feedback"),
            ("websites", "Websites"),
            ("additional", "Additional information"),
        )
        return [(head, list(self.contact[k])) for k, head in heads if self.contact.get(k)]


class _Keep(dict[str, Any]):
    """Format values that leave an unknown placeholder as written (``{name}``)."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _defaults() -> dict[str, Any]:
    import tomllib

    text = (resources.files("didcore") / "data" / "publication.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def _check(doc: Mapping[str, Any], schema: Mapping[str, Any], where: str, prefix: str = "") -> None:
    """Refuse unknown keys, wrong types and unknown placeholders, naming the key."""
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if key not in schema:
            allowed = ", ".join(f"{prefix}{k}" for k in schema)
            raise InputError(f"{where}: unknown key {name!r}; the keys are {allowed}")
        kind = schema[key]
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise InputError(f"{where}: {name} must be a table ([{name}] with its keys)")
            _check(value, kind, where, prefix=f"{name}.")
            continue
        if kind == "count":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(
                    f"{where}: {name} = {value!r}: give a whole number >= 1 (1 keeps counts "
                    "exact, 100 rounds to the nearest 100)"
                )
            continue
        lines = [value] if kind == "text" else value
        if kind == "text" and not isinstance(value, str):
            raise InputError(f"{where}: {name} must be text in double quotes")
        if kind == "lines" and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise InputError(f'{where}: {name} must be a list of texts, e.g. {name} = ["..."]')
        for line in lines:
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(line) if f is not None]
            except ValueError as exc:
                raise InputError(
                    f"{where}: {name}: {exc} in {line[:60]!r}; write a literal brace "
                    "as {{ or }}"
                ) from None
            bad = [f for f in fields if f not in PLACEHOLDERS]
            if bad:
                raise InputError(
                    f"{where}: {name}: unknown placeholder {{{bad[0]}}}; the placeholders are "
                    + ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                )


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_publication_config(
    path: str | Path | PublicationConfig | Mapping[str, Any] | None = None,
) -> PublicationConfig:
    """The shipped defaults, overridden by the keys of ``path`` (a TOML file) when given.

    ``path`` may also be a mapping with the file's structure (from Python) or a
    :class:`PublicationConfig` (returned as it is). A file that is missing, is not TOML, or has
    an unknown key, a wrong type or an unknown placeholder raises :class:`InputError` naming
    the file and the key.
    """
    if isinstance(path, PublicationConfig):
        return path
    doc = _defaults()
    source: str | None = None
    if path is not None:
        if isinstance(path, Mapping):
            user: Mapping[str, Any] = path
            source = "(given in Python)"
        else:
            import tomllib

            p = Path(path)
            source = str(p)
            try:
                raw = p.read_text(encoding="utf-8")
            except FileNotFoundError:
                raise InputError(
                    f"publication config {p}: no such file; give a TOML file with the keys to "
                    "change (see docs/report.md, 'The publication file')"
                ) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise InputError(
                    f"publication config {p}: cannot be read ({exc.__class__.__name__}); give "
                    "a UTF-8 TOML file"
                ) from None
            try:
                user = tomllib.loads(raw)
            except tomllib.TOMLDecodeError as exc:
                raise InputError(
                    f"publication config {p}: not valid TOML ({exc}); see docs/report.md, "
                    "'The publication file'"
                ) from None
        _check(user, _SCHEMA, f"publication config {source}")
        doc = _merge(doc, user)
    _check(doc, _SCHEMA, "the shipped publication.toml")
    return PublicationConfig(
        version=doc.get("version", ""),
        contact={k: tuple(v) for k, v in doc.get("contact", {}).items()},
        footnotes={k: tuple(v) for k, v in doc.get("footnotes", {}).items()},
        rounding=dict(doc.get("rounding", {})),
        source=source,
    )
