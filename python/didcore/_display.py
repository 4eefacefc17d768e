"""Short HTML summaries for notebooks (``_repr_html_``): a title and a two-column table.

Kept small on purpose: a notebook cell shows what an object holds (its axes, counts, vintage)
in a few rows, never the data itself (a lookup of 30,000 LSOAs, a cube of 500,000 cells);
``to_arrow()`` gives the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

__all__ = ["html_table", "many"]


def html_table(title: str, rows: Iterable[tuple[str, Any]]) -> str:
    """An HTML ``<table>`` with a bold caption and one ``name | value`` row per item; values
    that are ints are written with thousands separators. Everything is escaped.
    """
    body = "".join(
        f"<tr><th style='text-align:left'>{escape(str(k))}</th>"
        f"<td style='text-align:left'>{escape(f'{v:,}' if isinstance(v, int) else str(v))}</td>"
        "</tr>"
        for k, v in rows
    )
    return f"<table><caption style='text-align:left'><b>{escape(title)}</b></caption>{body}</table>"


def many(items: Iterable[str], show: int = 4) -> str:
    """Up to ``show`` items joined by commas, then ``"... (N in all)"``."""
    items = list(items)
    head = ", ".join(items[:show])
    return head if len(items) <= show else f"{head}, ... ({len(items)} in all)"
