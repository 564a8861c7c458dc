"""Shape checks of decoded JSON against type hints, before any dataclass is built from it.

Traces and result files are plain data written by mmsim and read back from disk, where
anything may have happened to them. Each reader checks every value against the field's
type hint first, so a bad file fails with one line saying which field is wrong instead of
an exception from deep inside a constructor. :func:`has_type` is on the trace reader's
per-op path: the common hints (``int``, ``str``) are tested first.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any

__all__ = ["describe", "has_type", "problem", "check_dataclass"]

_NOUNS = {int: ("an integer", "integers"), str: ("a string", "strings"),
          float: ("a number", "numbers"), bool: ("true or false", "booleans")}


def describe(hint: Any) -> str:
    """What a value of type ``hint`` is, in words ("an integer or null")."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in _NOUNS:
        return _NOUNS[hint][0]
    if hint is Any:
        return "any value"
    if dataclasses.is_dataclass(hint):
        return "an object"
    if origin is list:
        inner = _NOUNS.get(args[0], ("", "objects"))[1]
        return f"a list of {inner}"
    if origin is dict:
        return "an object" if args[1] is Any else \
            f"an object of {_NOUNS.get(args[1], ('', 'objects'))[1]}"
    rest = [a for a in args if a is not type(None)]
    return " or ".join(describe(a) for a in rest) + " or null"


def has_type(value: Any, hint: Any) -> bool:
    """Whether decoded JSON ``value`` has type ``hint`` (a bool is not a number; an
    integer is a float; a dataclass is an object whose fields have their types)."""
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is Any:
        return True
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is bool:
        return isinstance(value, bool)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return isinstance(value, dict) and problem(value, hint) is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is list:
        return isinstance(value, list) and all(has_type(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            isinstance(k, str) and has_type(v, args[1]) for k, v in value.items())
    if value is None:
        return type(None) in args
    return any(has_type(value, a) for a in args if a is not type(None))


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """The type hints of a dataclass's fields, and the names of those without a default."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    required = frozenset(f.name for f in dataclasses.fields(cls)
                         if f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)
    return {k: v for k, v in hints.items() if k in names}, required


def problem(data: dict[str, Any], cls: type) -> str | None:
    """What is wrong with ``data`` as the fields of dataclass ``cls`` ("field 'seed' must
    be an integer"), or None. Unknown fields are allowed (a newer writer may add some)."""
    hints, required = _fields(cls)
    for name in sorted(required - data.keys()):
        return f"missing field {name!r}"
    for key, value in data.items():
        if key in hints and not has_type(value, hints[key]):
            sub = hints[key]
            if isinstance(sub, type) and dataclasses.is_dataclass(sub) \
                    and isinstance(value, dict):
                inner = problem(value, sub)
                return f"in {key!r}: {inner}"
            return f"field {key!r} must be {describe(sub)}"
    return None


def check_dataclass(data: Any, cls: type, what: str) -> dict[str, Any]:
    """``data`` if it is an object matching dataclass ``cls`` field by field, else
    ValueError naming the first field that is wrong (``what`` names the object)."""
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object")
    wrong = problem(data, cls)
    if wrong is not None:
        raise ValueError(f"{what}: {wrong}")
    return data
