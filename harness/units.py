"""Byte sizes for people: ``format_size`` for messages, ``parse_size`` for flags like ``--max-memory``."""

from __future__ import annotations

import re

from harness.errors import InputError

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_DECIMAL = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def format_size(n: float) -> str:
    """``1536`` -> ``"1.5 KB"`` (binary multiples, one decimal)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def parse_size(value: str | int, field: str) -> int:
    """Bytes from ``"4GiB"``, ``"4G"`` (binary), ``"4GB"`` (decimal), ``"512MiB"``, ``"1.5g"`` or an
    integer; InputError naming ``field`` for anything else or a size below one byte."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*", str(value).lower())
        if match is None:
            raise InputError(
                f"expected a size such as 4GiB, 512MB or a byte count, got {value!r}", field=field
            )
        number, prefix, binary, b = match.groups()
        scale = _DECIMAL[prefix + "b"] if prefix and b and not binary else _UNITS[prefix]
        size = int(float(number) * scale)
    if size < 1:
        raise InputError(f"must be at least one byte, got {value!r}", field=field)
    return size
