"""A dataclass field declared once: its default, its check, and the command-line flag that sets it.

:func:`setting` makes the field; a :class:`Flag` in its metadata says how argparse spells it (name,
help, type / choices / action, place in ``--help``). The readers below take everything from the
fields, so a command's flags, the values built from what it parsed and the errors naming a flag
cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from typing import Any

from harness.errors import InputError, positive_int

Check = Callable[[Any, str], object]  # (value, its flag or field name); raises InputError
FIELD_DEFAULT: Any = object()  # Flag.default: the flag's default is the field's


@dataclass(frozen=True)
class Flag:
    """How a field is a command-line flag.

    ``help`` may say ``%(default)s``; ``order`` is the flag's place in ``--help`` (a command's
    flags that are no field sit between, by the same numbers); ``default``: the flag's own spelling
    of the field's default (a flag left at it leaves the field at its default).
    """

    name: str
    help: str
    order: int
    type: Callable[[str], Any] | None = None
    choices: Sequence[str] | None = None
    action: str | None = None
    default: Any = FIELD_DEFAULT


def setting(
    default: Any = MISSING,
    *,
    flag: Flag | None = None,
    check: Check | None = None,
    default_factory: Callable[[], Any] | Any = MISSING,
) -> Any:
    """A dataclass field with its flag (None: no flag, Python only) and its check."""
    metadata = {"flag": flag, "check": check}
    return field(default=default, default_factory=default_factory, metadata=metadata)


def positive(value: object, flag: str) -> None:
    positive_int(value, flag)


def positive_or_none(value: object, flag: str) -> None:
    if value is not None:
        positive_int(value, flag)


def non_negative(value: object, flag: str) -> None:
    if value != 0:
        positive_int(value, flag)


def one_of(*choices: object) -> Check:
    """A check that the value is one of ``choices``."""

    def check(value: object, flag: str) -> None:
        if value not in choices:
            raise InputError(f"must be one of {', '.join(map(str, choices))}; got {value!r}", field=flag)

    return check


def flag_of(cls: type, name: str) -> str:
    """The flag that sets field ``name`` of dataclass ``cls``; a field that is no flag is named as it is."""
    flag = next(f for f in dataclasses.fields(cls) if f.name == name).metadata.get("flag")
    return flag.name if flag else name


def check_fields(obj: Any) -> None:
    """Run every field's check on ``obj``, in field order, each error naming the field's flag."""
    for f in dataclasses.fields(obj):
        if f.metadata.get("check"):
            f.metadata["check"](getattr(obj, f.name), flag_of(type(obj), f.name))


def flag_fields(cls: type) -> list[tuple[dataclasses.Field, Flag]]:
    """The fields of ``cls`` that are flags, with their flag, in ``--help`` order."""
    pairs = [(f, f.metadata["flag"]) for f in dataclasses.fields(cls) if f.metadata.get("flag")]
    return sorted(pairs, key=lambda pair: pair[1].order)


def flag_default(f: dataclasses.Field, flag: Flag) -> Any:
    """What the flag holds when not given: its own spelling of the default, else the field's default."""
    if flag.default is not FIELD_DEFAULT:
        return flag.default
    return f.default if f.default_factory is MISSING else f.default_factory()


def from_flags(cls: type, values: Mapping[str, Any], **others: Any) -> Any:
    """``cls`` made from parsed flags (``values`` by field name): a flag left at its own spelling of
    the default leaves the field at its default; ``others`` are fields no flag sets."""
    given = {
        f.name: values[f.name]
        for f, flag in flag_fields(cls)
        if flag.default is FIELD_DEFAULT or values[f.name] != flag.default
    }
    return cls(**{**given, **others})
