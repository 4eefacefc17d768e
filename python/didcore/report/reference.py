"""Names and regions of ICBs and names of providers, for labelling tables, charts and maps.

ICBs: the lookups' ``icb`` table when it names them (it is the caller's own reference), then
``didcore.refdata`` when present, then the properties of the ICB boundaries that didcore ships
(which carry code, name, short name and region for the 42 ICBs of July 2022). A code found
nowhere is labelled by itself, so a synthetic or future ICB still gets a row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["IcbInfo", "icb_info", "load_boundaries", "provider_names", "short_name"]


@dataclass(frozen=True)
class IcbInfo:
    """One ICB's labels."""

    code: str
    name: str
    short_name: str
    region: str


def short_name(name: str) -> str:
    """``NHS Devon Integrated Care Board`` -> ``Devon`` (for chart labels)."""
    out = name.strip()
    if out.startswith("NHS "):
        out = out[4:]
    for suffix in (" Integrated Care Board", " ICB"):
        if out.endswith(suffix):
            out = out[: -len(suffix)]
    return out or name


@cache
def load_boundaries() -> dict[str, Any]:
    """The shipped GeoJSON of ICB boundaries (ONS, July 2022, ultra-generalised), parsed once."""
    text = (
        resources.files("didcore")
        .joinpath("data", "icb_boundaries_jul2022_buc.geojson")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)


def _refdata_icbs() -> dict[str, tuple[str, str]]:
    """ICB code -> (name, region) from ``didcore.refdata`` if that module offers them."""
    try:
        from didcore import refdata  # optional sibling module: absent in minimal installs
    except ImportError:
        return {}
    loader = getattr(refdata, "icbs", None) or getattr(refdata, "load_icbs", None)
    if loader is None:
        return {}
    try:
        table = loader()
    except Exception:  # reference data are a convenience: labels fall back below
        return {}
    cols = getattr(table, "column_names", [])
    if "icb_code" not in cols or "icb_name" not in cols:
        return {}
    region_col = next((c for c in ("region", "region_name") if c in cols), None)
    codes = table["icb_code"].to_pylist()
    names = table["icb_name"].to_pylist()
    regions = table[region_col].to_pylist() if region_col else [""] * len(codes)
    return {c: (n or c, r or "") for c, n, r in zip(codes, names, regions, strict=True) if c}


def icb_info(
    codes: Iterable[str],
    names: Mapping[str, str] | None = None,
    regions: Mapping[str, str] | None = None,
) -> dict[str, IcbInfo]:
    """Labels for each ICB code, from the caller's names/regions, refdata or the boundaries."""
    shipped = {
        f["properties"]["icb_code"]: (
            f["properties"]["icb_name"],
            f["properties"]["region_name"],
        )
        for f in load_boundaries()["features"]
    }
    ref = _refdata_icbs()
    out: dict[str, IcbInfo] = {}
    for code in codes:
        fallback_name, fallback_region = ref.get(code) or shipped.get(code) or (code, "")
        name = (names or {}).get(code) or fallback_name
        region = (regions or {}).get(code) or fallback_region or "Unknown region"
        out[code] = IcbInfo(code=code, name=name, short_name=short_name(name), region=region)
    return out


def provider_names() -> dict[str, str]:
    """Provider code -> name from ``didcore.refdata`` when available, else an empty mapping."""
    try:
        from didcore import refdata
    except ImportError:
        return {}
    loader = getattr(refdata, "providers", None) or getattr(refdata, "load_providers", None)
    if loader is None:
        return {}
    try:
        table = loader()
    except Exception:  # names are labels only; a missing file must not stop the report
        return {}
    cols = getattr(table, "column_names", [])
    if "provider_code" not in cols or "provider_name" not in cols:
        return {}
    return {
        c: n
        for c, n in zip(
            table["provider_code"].to_pylist(), table["provider_name"].to_pylist(), strict=True
        )
        if c and n
    }
