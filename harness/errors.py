"""The two errors the harness raises on purpose (no harness imports: every module may use them)."""

from __future__ import annotations


class HarnessError(Exception):
    """Base class for every error the harness raises on purpose."""


class InputError(HarnessError):
    """Bad input data or configuration; the message says where, in the user's terms:
    ``corpus.jsonl:12: field 'text': expected a string`` for a field of a file, ``--k: must be a
    positive integer, got 0`` for a command-line flag (or an argument of a Python call)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file, self.line, self.field = file, line, field
        where = ""
        if file is not None:
            where = f"{file}" + (f":{line}" if line is not None else "") + ": "
        what = ""
        if field is not None:
            what = f"field '{field}': " if file is not None else f"{field}: "
        super().__init__(f"{where}{what}{message}")


def positive_int(value: object, field: str, *, file: str | None = None) -> int:
    """``value`` as an int when it is a positive integer (numpy integers too, bools not), else
    InputError naming ``field`` (and ``file``)."""
    # hasattr narrows to "has __index__", which says nothing of "<": every int-like compares with int
    if isinstance(value, bool) or not hasattr(value, "__index__") or value < 1:  # type: ignore[operator]
        raise InputError(f"must be a positive integer, got {value!r}", file=file, field=field)
    return int(value)
