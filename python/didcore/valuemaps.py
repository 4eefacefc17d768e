"""Value maps: recode an extract's values before they are classified (``--map sex=M:1,F:2``).

An extract that codes sex as ``M``/``F``, or modality as ``XR``/``US``, can be read as it is
by mapping those values onto the codes didcore reads: NHS Person Gender Code (``1`` male,
``2`` female, ``0``/``9`` not known) and the modality values of the measures file. A map is
``{column role: {from: to}}``; the roles are those of :data:`MAPPABLE`. Keys are normalised
as codes are (trimmed, ASCII upper-cased: ``m``, ``M `` and ``M`` are one key); a value that
is in no map is read as it is; ``to`` may be blank, meaning missing.

Maps are applied to each batch's dictionary of a column (its distinct values) before it is
classified, so they cost per distinct value, not per row. They come from three places, merged
in this order (a later one wins for the same key): ``value_maps.csv`` in the lookups folder
(columns ``column``, ``from``, ``to``), ``value_maps=`` in the API, ``--map`` on the command
line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from didcore.codes import normalise_array, normalise_code
from didcore.errors import InputError, MissingColumnError

__all__ = [
    "MAPPABLE",
    "ValueMaps",
    "apply_map",
    "map_value",
    "mapped_classifier",
    "merge_maps",
    "normalise_maps",
    "parse_map_options",
    "read_value_maps",
]

#: Column roles a value map may recode (names of :class:`didcore.io.Columns` fields).
MAPPABLE: tuple[str, ...] = ("sex", "modality", "exam_code", "gp_practice_code", "lsoa11")

ValueMaps = dict[str, dict[str, str]]


def _key(value: object) -> str:
    return normalise_code(value) or ""


def normalise_maps(
    maps: Mapping[str, Mapping[Any, Any]] | None, where: str = "value_maps"
) -> ValueMaps:
    """Check and normalise ``{role: {from: to}}``: roles must be in :data:`MAPPABLE`, keys are
    normalised codes (a blank key is an error), ``to`` is text (``None`` -> blank, missing).
    """
    out: ValueMaps = {}
    if maps is not None and not isinstance(maps, Mapping):
        raise InputError(
            f"{where} must be a mapping of column to {{from: to}}, e.g. "
            f'{{"sex": {{"M": "1", "F": "2"}}}}; got {type(maps).__name__}'
        )
    for role, mapping in (maps or {}).items():
        if not isinstance(mapping, Mapping):
            raise InputError(
                f"{where}: {role!r} must map values to values, e.g. "
                f'{{"{role}": {{"M": "1"}}}}; got {type(mapping).__name__} {mapping!r:.40}'
            )
        if role not in MAPPABLE:
            raise InputError(
                f"{where}: cannot map column {role!r}; value maps recode "
                f"{', '.join(MAPPABLE)} (e.g. --map sex=M:1,F:2)"
            )
        target = out.setdefault(role, {})
        for src, dst in mapping.items():
            key = _key(src)
            if not key:
                raise InputError(f"{where}: {role} maps a blank value; name the value to recode")
            target[key] = "" if dst is None else str(dst).strip()
    return out


def merge_maps(*maps: Mapping[str, Mapping[str, str]] | None) -> ValueMaps:
    """Merge normalised maps; a later map wins for the same column and value."""
    out: ValueMaps = {}
    for m in maps:
        for role, mapping in (m or {}).items():
            out.setdefault(role, {}).update(mapping)
    return {k: v for k, v in out.items() if v}


def parse_map_options(options: Sequence[str]) -> ValueMaps:
    """``["sex=M:1,F:2", "modality=XR:Plain Radiography"]`` (``--map``, repeatable) as maps.

    Each option is ``COLUMN=FROM:TO[,FROM:TO...]``; ``FROM:`` (nothing after the colon) maps
    to missing. Values holding a comma or a colon go in ``value_maps.csv`` instead.
    """
    raw: dict[str, dict[str, str]] = {}
    for option in options:
        role, sep, pairs = option.partition("=")
        role = role.strip()
        if not sep or not role or not pairs.strip():
            raise InputError(
                f"--map {option!r}: use COLUMN=FROM:TO[,FROM:TO...] (e.g. --map sex=M:1,F:2)"
            )
        for pair in pairs.split(","):
            src, colon, dst = pair.partition(":")
            if not colon or not src.strip():
                raise InputError(
                    f"--map {option!r}: {pair.strip()!r} is not FROM:TO (e.g. --map sex=M:1,F:2)"
                )
            raw.setdefault(role, {})[src] = dst
    return normalise_maps(raw, "--map")


def read_value_maps(folder: str | Path) -> ValueMaps:
    """``value_maps.csv`` of a lookups folder (columns ``column``, ``from``, ``to``), or ``{}``
    when there is none.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from didcore.lookup_files import small_table_pool

    root = Path(folder)
    path = (
        next((p for p in sorted(root.iterdir()) if p.name.lower() == "value_maps.csv"), None)
        if root.is_dir()
        else None
    )
    if path is None:
        return {}
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={"column": pa.string(), "from": pa.string(), "to": pa.string()},
                strings_can_be_null=False,
            ),
            memory_pool=small_table_pool(),
        )
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"value maps {path}: cannot read it ({exc})") from exc
    names = {c.strip().lower(): c for c in table.column_names}
    missing = [c for c in ("column", "from", "to") if c not in names]
    if missing:
        raise MissingColumnError(
            f"value maps {path} has no column {', '.join(missing)} (it has: "
            f"{', '.join(table.column_names)}); it needs column, from, to"
        )
    raw: dict[str, dict[str, str]] = {}
    rows = zip(*(table.column(names[c]).to_pylist() for c in ("column", "from", "to")), strict=True)
    for role, src, dst in rows:
        raw.setdefault((role or "").strip(), {})[src] = dst
    return normalise_maps(raw, f"value maps {path}")


def apply_map(dictionary: Any, mapping: Mapping[str, str]) -> Any:
    """A dictionary (Arrow string array of distinct values) with mapped values replaced:
    each value is normalised and, where it is a key of ``mapping``, replaced by its target.
    """
    import pyarrow.compute as pc

    from didcore._arrow_compat import text_array

    if not mapping or len(dictionary) == 0:
        return dictionary
    # (not pa.array: it imports pandas where it is installed; see didcore._arrow_compat)
    keys = text_array(list(mapping))
    targets = text_array(list(mapping.values()))
    norm = normalise_array(dictionary)
    where = pc.index_in(norm, value_set=keys)
    return pc.coalesce(pc.take(targets, where), dictionary)


def map_value(value: str | None, mapping: Mapping[str, str] | None) -> str | None:
    """One raw value through a map (for guards reading a profile of raw values)."""
    if value is None or not mapping:
        return value
    return mapping.get(_key(value), value)


def mapped_classifier(classify: Any, mapping: Mapping[str, str]) -> Any:
    """``classify`` applied to a dictionary after :func:`apply_map` (per distinct value)."""

    def run(dictionary: Any) -> Any:
        return classify(apply_map(dictionary, mapping))

    return run
