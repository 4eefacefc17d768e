"""Seeded byte-level mutation of small files: Parquet, CSV and lookup files.

Each mutator takes the file's bytes and a ``random.Random`` and returns new bytes. They are
the damage files suffer in practice (a copy cut short, a bad sector, two files run together,
an editor's re-encoding) and the bytes that trip text decoders (invalid UTF-8, UTF-16, NUL,
a lone surrogate's encoding, a BOM).
"""

from __future__ import annotations

import random
from collections.abc import Callable

# Bytes that are not UTF-8 text, or are text decoders stumble on.
NOT_UTF8 = [
    b"\xff",
    b"\xfe\xff",
    b"\xc3",  # a lead byte alone
    b"\xc3\x28",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf8\x88\x80\x80\x80",
    b"\xc0\xaf",  # overlong "/"
    b"\x80",
    b"\x00",
    b"\xef\xbb\xbf",  # a BOM in the middle
]


def flip(data: bytes, rng: random.Random) -> bytes:
    """Flip 1-8 random bits or set random bytes."""
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(out))
        out[i] = out[i] ^ (1 << rng.randrange(8)) if rng.random() < 0.5 else rng.randrange(256)
    return bytes(out)


def cut(data: bytes, rng: random.Random) -> bytes:
    """Truncate (a copy cut short), sometimes to nothing or to a few bytes."""
    if not data:
        return data
    where = rng.choice([0, 1, 4, 8, len(data) // 2, len(data) - 1, len(data) - 8])
    return data[: max(0, min(len(data), where if rng.random() < 0.5 else rng.randrange(len(data))))]


def chop_middle(data: bytes, rng: random.Random) -> bytes:
    """Remove a stretch from the middle (a lost block)."""
    if len(data) < 4:
        return data
    a = rng.randrange(len(data))
    b = min(len(data), a + rng.randint(1, max(1, len(data) // 4)))
    return data[:a] + data[b:]


def splice(data: bytes, rng: random.Random, other: bytes | None = None) -> bytes:
    """Run another file's bytes (or this file's) into this one at a random point."""
    donor = other if other else data
    if not data or not donor:
        return data + donor
    a = rng.randrange(len(data))
    s = rng.randrange(len(donor))
    return data[:a] + donor[s : s + rng.randint(1, len(donor) - s)] + data[a:]


def insert_bad_text(data: bytes, rng: random.Random) -> bytes:
    """Insert bytes that are not UTF-8 (or a BOM, a NUL) at random points."""
    out = data
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(out) + 1)
        out = out[:i] + rng.choice(NOT_UTF8) + out[i:]
    return out


def duplicate_region(data: bytes, rng: random.Random) -> bytes:
    """Repeat a stretch of the file in place."""
    if len(data) < 2:
        return data + data
    a = rng.randrange(len(data))
    b = min(len(data), a + rng.randint(1, 64))
    return data[:b] + data[a:b] * rng.randint(1, 3) + data[b:]


def zero_region(data: bytes, rng: random.Random) -> bytes:
    """Zero a stretch (a sparse file's hole, a bad sector)."""
    if not data:
        return data
    a = rng.randrange(len(data))
    b = min(len(data), a + rng.randint(1, 256))
    return data[:a] + bytes(b - a) + data[b:]


BYTE_MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "flip": flip,
    "cut": cut,
    "chop_middle": chop_middle,
    "splice": splice,
    "insert_bad_text": insert_bad_text,
    "duplicate_region": duplicate_region,
    "zero_region": zero_region,
}


# ------------------------------------------------------------------ Parquet-aware


def parquet_footer(data: bytes, rng: random.Random) -> bytes:
    """Damage the footer: its length field, its magic, or a byte of the metadata."""
    if len(data) < 12:
        return flip(data, rng)
    out = bytearray(data)
    what = rng.randrange(3)
    if what == 0:  # the 4-byte metadata length before the closing "PAR1"
        n = int.from_bytes(out[-8:-4], "little")
        n = rng.choice([0, 1, n - 1, n + 1, n * 2, 2**31 - 1, 2**32 - 1, len(out)])
        out[-8:-4] = (n % 2**32).to_bytes(4, "little")
    elif what == 1:
        out[-4:] = rng.choice([b"PAR0", b"PARE", b"\x00\x00\x00\x00"])
    else:
        n = int.from_bytes(out[-8:-4], "little")
        lo = max(4, len(out) - 8 - n)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(lo, len(out) - 8)
            out[i] = rng.randrange(256)
    return bytes(out)


def parquet_body(data: bytes, rng: random.Random) -> bytes:
    """Damage the column chunks only (pages, dictionaries), leaving the footer intact: the
    file still opens, its row groups fail (or worse, decode to something else) when read.
    """
    if len(data) < 16:
        return flip(data, rng)
    n = int.from_bytes(data[-8:-4], "little")
    hi = max(5, len(data) - 8 - n)
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(4, hi)
        out[i] = out[i] ^ (1 << rng.randrange(8)) if rng.random() < 0.6 else rng.randrange(256)
    return bytes(out)


PARQUET_MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    **BYTE_MUTATORS,
    "footer": parquet_footer,
    "body": parquet_body,
    "body2": parquet_body,
}


# ------------------------------------------------------------------ text-aware


def utf16(data: bytes, rng: random.Random) -> bytes:
    """Re-encode as UTF-16 (Excel's 'Unicode text'), with or without a BOM."""
    text = data.decode("utf-8", errors="replace")
    return text.encode(rng.choice(["utf-16", "utf-16-le", "utf-16-be"]))


def latin1(data: bytes, rng: random.Random) -> bytes:
    """Re-encode as Latin-1 / cp1252 (accented letters become single non-UTF-8 bytes)."""
    text = data.decode("utf-8", errors="replace").replace("\ufffd", "?")
    return (text + rng.choice(["", "\u00e9", "caf\u00e9\n"])).encode("cp1252", errors="replace")


def bom(data: bytes, rng: random.Random) -> bytes:
    """Prefix a UTF-8 BOM (Excel's 'CSV UTF-8')."""
    return b"\xef\xbb\xbf" + data


def header_bad_text(data: bytes, rng: random.Random) -> bytes:
    """Put non-UTF-8 bytes into the header line."""
    end = data.find(b"\n")
    end = len(data) if end < 0 else end
    i = rng.randrange(end + 1)
    return data[:i] + rng.choice(NOT_UTF8) + data[i:]


def line_endings(data: bytes, rng: random.Random) -> bytes:
    """CR only (old Mac), CRLF, or mixed line endings; or none at the end."""
    choice = rng.randrange(4)
    if choice == 0:
        return data.replace(b"\n", b"\r")
    if choice == 1:
        return data.replace(b"\n", b"\r\n")
    if choice == 2:
        return data.rstrip(b"\n")
    return b"\n\n" + data + b"\n\n\n"


def ragged(data: bytes, rng: random.Random) -> bytes:
    """A line with a field too many or too few."""
    lines = data.split(b"\n")
    if len(lines) < 2:
        return data + b",extra"
    i = rng.randrange(len(lines))
    lines[i] = lines[i] + b",x" if rng.random() < 0.5 else lines[i].rpartition(b",")[0]
    return b"\n".join(lines)


def quotes(data: bytes, rng: random.Random) -> bytes:
    """An unbalanced quote, or a quoted field run on over a line break."""
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.choice([b'"', b'""', b'"\n', b"'", b'\\"']) + data[i:]


def huge_field(data: bytes, rng: random.Random) -> bytes:
    """A header or first-row field over 64 KiB (valid CSV, whatever the reader's block)."""
    lines = data.split(b"\n")
    i = rng.choice([0, min(1, len(lines) - 1)])
    lines[i] = lines[i] + (b"Z" * rng.choice([70_000, 140_000]) if i else b",x" + b"y" * 70_000)
    if i == 0 and len(lines) > 1:  # keep the rows as wide as the header
        lines[1:] = [ln + b"," if ln else ln for ln in lines[1:]]
    return b"\n".join(lines)


def delimiter(data: bytes, rng: random.Random) -> bytes:
    """Semicolons (European Excel) or tabs instead of commas."""
    return data.replace(b",", rng.choice([b";", b"\t", b"|"]))


TEXT_MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    **BYTE_MUTATORS,
    "utf16": utf16,
    "latin1": latin1,
    "bom": bom,
    "header_bad_text": header_bad_text,
    "line_endings": line_endings,
    "ragged": ragged,
    "quotes": quotes,
    "huge_field": huge_field,
    "delimiter": delimiter,
}


def mutate(
    data: bytes,
    rng: random.Random,
    mutators: dict[str, Callable[[bytes, random.Random], bytes]],
    *,
    rounds: int | None = None,
) -> tuple[bytes, list[str]]:
    """Apply 1-3 (or ``rounds``) mutators chosen at random; returns the bytes and their names."""
    names = []
    for _ in range(rounds if rounds is not None else rng.choice([1, 1, 1, 2, 3])):
        name = rng.choice(sorted(mutators))
        data = mutators[name](data, rng)
        names.append(name)
    return data, names
