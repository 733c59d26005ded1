"""Typed JSON for workflow inputs, outputs, step results, messages and errors.

One cattrs converter (the preconfigured JSON one, plus Decimal and UUID) turns values
into JSON-able data guided by the *declared* type (the workflow's or step's annotation),
and back. Every payload is wrapped in an envelope with a format version,
``{"v": 1, "d": ...}``, so the format can evolve without guessing. Never pickle:
anything that can write the database must not be able to run code in the reader.

Where the type is unknown (a lambda step with no annotation), only plain JSON values
(None, bool, int, float, str, lists and str-keyed dicts of them) are accepted: anything
else would come back from a replay as a different type, which is a bug that surfaces
only after a crash. Such a value is rejected on the first run, with a message that says
how to fix it.
"""

from __future__ import annotations

import datetime
import decimal
import json
import typing
import uuid
from collections.abc import Callable
from typing import Any, Final

import cattrs
from cattrs.preconf.json import make_converter

from durakit.api.errors_codec import error_data, is_plain_json, rebuild_error, safe_repr
from durakit.core.errors import SerializationError

FORMAT_VERSION: Final = 1

UNKNOWN: Final[Any] = None
"""Marker for "no declared type": plain JSON values only."""


def _make_converter() -> cattrs.Converter:
    conv = make_converter()
    conv.register_unstructure_hook(decimal.Decimal, str)
    conv.register_structure_hook(decimal.Decimal, lambda v, _: decimal.Decimal(v))
    conv.register_unstructure_hook(uuid.UUID, str)
    conv.register_structure_hook(uuid.UUID, lambda v, _: uuid.UUID(v))
    # Durations as seconds (exact to the microsecond for any realistic span), times of
    # day as ISO text: both readable in SQL.
    conv.register_unstructure_hook(datetime.timedelta, lambda v: v.total_seconds())
    conv.register_structure_hook(datetime.timedelta, lambda v, _: datetime.timedelta(seconds=v))
    conv.register_unstructure_hook(datetime.time, lambda v: v.isoformat())
    conv.register_structure_hook(datetime.time, lambda v, _: datetime.time.fromisoformat(v))
    # A function annotated ``-> None`` declares NoneType, which cattrs cannot structure.
    conv.register_structure_hook(type(None), _structure_none)
    return conv


def _structure_none(value: object, _: object) -> None:
    if value is not None:
        raise ValueError(f"expected null, got {value!r}")


def _is_plain_json(value: object, what: str) -> bool:
    try:
        return is_plain_json(value)
    except RecursionError:
        raise SerializationError(f"{what} is nested too deeply to be stored") from None


def _known(type_: Any) -> bool:
    return type_ is not None and type_ is not Any and not isinstance(type_, typing.TypeVar)


def declared_return_type(fn: Callable[..., object]) -> Any:
    """The return annotation of ``fn`` (resolving string annotations), or UNKNOWN."""
    target = getattr(fn, "func", fn)  # functools.partial
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations mean "unknown", not an error
        return UNKNOWN
    return hints.get("return", UNKNOWN)


class Serializer:
    """Encodes and decodes durakit payloads; one instance per engine."""

    def __init__(self) -> None:
        self._conv = _make_converter()

    def dumps(self, value: object, type_: Any = UNKNOWN, *, what: str = "value") -> str:
        """Encode ``value`` as declared by ``type_``; SerializationError names ``what``."""
        if _known(type_):
            try:
                data = self._conv.unstructure(value, unstructure_as=type_)
            except Exception as exc:
                raise SerializationError(
                    f"{what} of type {type(value).__qualname__} cannot be serialized as "
                    f"{_type_name(type_)}: {exc}"
                ) from exc
        elif _is_plain_json(value, what):
            data = value
        else:
            raise SerializationError(
                f"{what} is a {type(value).__qualname__} but its type is not declared, so "
                "it could not be rebuilt on replay; annotate the function's return type "
                "(or pass output_type=/type=), or return plain JSON values"
            )
        try:
            return json.dumps({"v": FORMAT_VERSION, "d": data}, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(
                f"{what} of type {type(value).__qualname__} is not JSON-serializable: {exc}"
            ) from exc

    def dumps_payload(self, value: object, *, what: str = "value") -> str:
        """Encode a message or event value. Its reader declares the type (``recv`` and
        ``get_event`` take ``type=``), so the writer encodes it by its runtime class."""
        plain = _is_plain_json(value, what)
        return self.dumps(value, UNKNOWN if plain else type(value), what=what)

    def loads(self, text: str, type_: Any = UNKNOWN, *, what: str = "value") -> Any:
        """Decode a payload made by :meth:`dumps`."""
        data = _open_envelope(text, what)
        if not _known(type_):
            return data
        try:
            return self._conv.structure(data, type_)
        except Exception as exc:
            raise SerializationError(
                f"{what} cannot be read back as {_type_name(type_)}: {exc}"
            ) from exc

    def roundtrip(
        self, value: object, type_: Any = UNKNOWN, *, what: str = "value"
    ) -> tuple[str, Any]:
        """Encode, and decode again: the workflow sees exactly what a replay would see."""
        text = self.dumps(value, type_, what=what)
        return text, self.loads(text, type_, what=what)

    def loads_or_plain(
        self, text: str, type_: Any = UNKNOWN, *, what: str = "value"
    ) -> tuple[Any, SerializationError | None]:
        """For reading rows without failing: the decoded value and None, or, if ``text``
        cannot be decoded as ``type_``, its plain JSON (the envelope's data, or the raw
        text if it is not even JSON) and the error :meth:`loads` raises."""
        try:
            return self.loads(text, type_, what=what), None
        except SerializationError as exc:
            return _plain_data(text), exc

    def plain(self, value: object) -> Any:
        """``value`` as plain data for display (the admin API, the CLI): unstructured by
        its runtime class, as :meth:`dumps_payload` would store it. Not necessarily JSON
        yet: the caller still makes keys text and non-finite floats strings."""
        try:
            return self._conv.unstructure(value)
        except Exception:  # noqa: BLE001 - display only: a value that cannot be unstructured is shown as its repr
            return safe_repr(value)

    # -- errors (see errors_codec) --------------------------------------------------------
    def dumps_error(self, exc: BaseException) -> str:
        """Record an exception: its class, args, JSON attributes, message and traceback."""
        data = error_data(exc)
        try:
            return json.dumps({"v": FORMAT_VERSION, "d": data}, separators=(",", ":"))
        except (ValueError, RecursionError):  # NaN is JSON to us; only depth can fail here
            bare = {k: data[k] for k in ("type", "message", "traceback")}
            return json.dumps({"v": FORMAT_VERSION, "d": bare}, separators=(",", ":"))

    def loads_error(self, text: str, *, what: str = "recorded error") -> Exception:
        """Rebuild a recorded exception as its original type where that is safe; a
        SerializationError naming ``what`` if ``text`` is not a recorded error at all."""
        data = _open_envelope(text, what)
        if not isinstance(data, dict):
            raise SerializationError(f"{what}: expected an object, got {type(data).__name__}")
        return rebuild_error(data)

    def roundtrip_error(self, exc: BaseException) -> tuple[str, Exception]:
        """Record, and rebuild again: the workflow sees what a replay would see."""
        text = self.dumps_error(exc)
        return text, self.loads_error(text)


def _open_envelope(text: str, what: str) -> Any:
    """The data inside a ``{"v": FORMAT_VERSION, "d": ...}`` envelope; anything else
    (another version, no envelope, not JSON, JSON nested too deep) is refused rather
    than guessed at."""
    try:
        envelope = json.loads(text)
    except RecursionError:
        raise SerializationError(f"{what}: JSON nested too deeply to decode") from None
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or envelope.get("v") != FORMAT_VERSION or "d" not in envelope:
        raise SerializationError(
            f"{what}: unsupported payload format (expected version {FORMAT_VERSION})"
        )
    return envelope["d"]


def _plain_data(text: str) -> Any:
    """Whatever JSON ``text`` holds: the data of an envelope of any version, else the text."""
    try:
        envelope = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return envelope["d"] if isinstance(envelope, dict) and "d" in envelope else text


def _type_name(type_: Any) -> str:
    return getattr(type_, "__qualname__", None) or repr(type_)
