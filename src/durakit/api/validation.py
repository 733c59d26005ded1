"""The rules for what users pass in: identifiers, durations, and workflow functions.

Each rule lives in one function here and is applied where the value enters, before
anything is written, so every store behaves the same (Postgres text cannot hold NUL,
psycopg cannot encode a lone surrogate, a NOTIFY payload holds 8000 bytes, a btree
index entry about 2700, an epoch-millisecond column 64 bits).
"""

from __future__ import annotations

import inspect
import math
import types
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, Final

MAX_IDENTIFIER_BYTES: Final = 1000
"""The longest identifier, in UTF-8 bytes (a NOTIFY payload adds a few to it)."""

MAX_DURATION: Final = timedelta(days=36525)
"""The longest duration (100 years): any deadline it yields fits a 64-bit epoch-ms."""

_MAX_SECONDS: Final = MAX_DURATION.total_seconds()


def _short(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}...{text[-12:]} ({len(value)} chars)"


def identifier_problem(value: str) -> str | None:
    """Why ``value`` (a str) is not a valid identifier, or None if it is."""
    if not value:
        return "must not be empty"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        return f"must be valid Unicode, got a lone surrogate at index {exc.start}: {_short(value)}"
    if "\x00" in value:
        return f"must not contain NUL characters: {_short(value)}"
    if size > MAX_IDENTIFIER_BYTES:
        return f"must be at most {MAX_IDENTIFIER_BYTES} UTF-8 bytes, got {size}"
    return None


def check_identifier(name: str, value: object, *, derived: str = "") -> str:
    """Return ``value`` if it is a valid identifier, else raise naming ``name``.

    Identifiers (workflow IDs, workflow and step names, queue names, topics, event keys)
    are non-empty str of valid Unicode (no lone surrogates) without NUL, at most
    ``MAX_IDENTIFIER_BYTES`` UTF-8 bytes. ``derived`` says where a value the user did
    not pass came from (a function's ``__qualname__``, a parent's ID).
    """
    if not isinstance(value, str):
        raise TypeError(f"{name}{derived} must be a str, got {type(value).__qualname__}")
    problem = identifier_problem(value)
    if problem is not None:
        raise ValueError(f"{name}{derived} {problem}")
    return value


def check_identifiers(**fields: str | None) -> None:
    """:func:`check_identifier` on each field that is not None (None: "not given")."""
    for name, value in fields.items():
        if value is not None:
            check_identifier(name, value)


def check_text(**fields: str | None) -> None:
    """Free text the stores keep (user and role names, versions): any length, but no
    NUL and no lone surrogate, which some stores cannot hold. None is skipped."""
    for name, value in fields.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, got {type(value).__qualname__}")
        if not storable(value):
            raise ValueError(
                f"{name} must be valid Unicode without NUL characters: {_short(value)}"
            )


def storable(value: str) -> bool:
    """Whether every store can hold ``value`` (no NUL, no lone surrogate)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def possible_ids(values: Iterable[str]) -> tuple[str, ...]:
    """The values that could be identifiers: a read filter drops the others, which no
    stored row can match (and some drivers cannot even send)."""
    return tuple(v for v in values if identifier_problem(v) is None)


def check_duration(name: str, value: object) -> float:
    """``value`` (seconds as int/float, or a timedelta) in seconds, or raise naming ``name``.

    A duration is finite, >= 0 and at most ``MAX_DURATION`` (100 years), so that any
    deadline computed from it is an epoch-millisecond that every store and ``datetime``
    can hold. NaN and infinities are refused (NaN compares false with everything).
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        # Compare before converting: float() of a huge int overflows.
        seconds = float(value) if 0 <= value <= _MAX_SECONDS else math.nan
    else:
        raise TypeError(
            f"{name} must be seconds (int or float) or a timedelta, got {type(value).__qualname__}"
        )
    if not 0 <= seconds <= _MAX_SECONDS:
        raise ValueError(
            f"{name} must be a finite duration between 0 and {_MAX_SECONDS:.0f} seconds "
            f"(100 years), got {value!r}"
        )
    return seconds


def check_function(fn: Callable[..., Any], what: str) -> str | None:
    """Why ``fn`` cannot be a sync workflow or step (async or generator), or None.

    Calling such a function returns a coroutine or generator instead of running its
    body, which the engine would then try to store as the result.
    """
    kind = _function_kind(fn)
    if kind is None and not inspect.isroutine(fn):
        kind = _function_kind(type(fn).__call__)  # an object with an async __call__
    if kind is None:
        return None
    return (
        f"{kind} {what}s are not supported yet; make {_qualname(fn)!r} a plain `def` "
        "that returns its value"
    )


def refuse_unsupported_result(value: object, step_name: str) -> None:
    """Raise TypeError if a step returned a coroutine or generator: its body has not
    run (a lambda around an async function, say), and never will."""
    if isinstance(value, types.CoroutineType | types.GeneratorType):
        value.close()  # no "coroutine was never awaited" warning on top of the error
    elif not isinstance(value, types.AsyncGeneratorType):
        return
    kind = type(value).__name__.replace("_", " ")
    raise TypeError(
        f"step {step_name!r} returned a {kind}: async and generator steps are not "
        "supported yet; call a plain function that returns its value"
    )


def _function_kind(fn: object) -> str | None:
    if inspect.iscoroutinefunction(fn):
        return "async"
    if inspect.isasyncgenfunction(fn):
        return "async generator"
    if inspect.isgeneratorfunction(fn):
        return "generator"
    return None


def _qualname(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", None) or fn)
