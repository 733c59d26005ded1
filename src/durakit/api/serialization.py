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

import builtins
import contextlib
import datetime
import decimal
import json
import sys
import traceback
import typing
import uuid
from collections.abc import Callable
from typing import Any, Final

import cattrs
from cattrs.preconf.json import make_converter

from durakit.core.errors import (
    ERROR_CLASSES,
    DurakitError,
    ErrorCode,
    MaxStepRetriesExceededError,
    SerializationError,
    WorkflowExecutionError,
)

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


def _is_plain_json(value: object) -> bool:
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) is list:
        return all(_is_plain_json(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _is_plain_json(v) for k, v in value.items())
    return False


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
        elif _is_plain_json(value):
            data = value
        else:
            raise SerializationError(
                f"{what} is a {type(value).__qualname__} but its type is not declared, so "
                "it could not be rebuilt on replay; annotate the function's return type "
                "(or pass output_type=/type=), or return plain JSON values"
            )
        try:
            return json.dumps({"v": FORMAT_VERSION, "d": data}, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"{what} of type {type(value).__qualname__} is not JSON-serializable: {exc}"
            ) from exc

    def dumps_payload(self, value: object, *, what: str = "value") -> str:
        """Encode a message or event value. Its reader declares the type (``recv`` and
        ``get_event`` take ``type=``), so the writer encodes it by its runtime class."""
        return self.dumps(value, UNKNOWN if _is_plain_json(value) else type(value), what=what)

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

    # -- errors ---------------------------------------------------------------
    def dumps_error(self, exc: BaseException) -> str:
        """Record an exception: type, message, traceback text, and rebuildable args."""
        return json.dumps({"v": FORMAT_VERSION, "d": _error_data(exc)}, separators=(",", ":"))

    def loads_error(self, text: str) -> BaseException:
        """Rebuild a recorded exception as its original type where that is safe."""
        data = _open_envelope(text, "recorded error")
        if not isinstance(data, dict):
            raise SerializationError(f"recorded error: expected an object, got {data!r}")
        return _rebuild_error(data)


def _open_envelope(text: str, what: str) -> Any:
    """The data inside a ``{"v": FORMAT_VERSION, "d": ...}`` envelope; anything else
    (another version, no envelope, not JSON) is refused rather than guessed at."""
    try:
        envelope = json.loads(text)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or envelope.get("v") != FORMAT_VERSION or "d" not in envelope:
        raise SerializationError(
            f"{what}: unsupported payload format (expected version {FORMAT_VERSION})"
        )
    return envelope["d"]


def _type_name(type_: Any) -> str:
    return getattr(type_, "__qualname__", None) or repr(type_)


def _error_data(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    data: dict[str, Any] = {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
    args = list(exc.args)
    if _is_plain_json(args):
        data["args"] = args
    if isinstance(exc, DurakitError):
        data["code"] = exc.code.name
        data["fields"] = exc.fields()
        data["message"] = exc.message
        if isinstance(exc, MaxStepRetriesExceededError):
            data["errors"] = [_error_data(e) for e in exc.errors]
        if isinstance(exc, WorkflowExecutionError):
            data["error_type"] = exc.error_type
    return data


def _resolve_class(path: str) -> type[BaseException] | None:
    """Find an exception class by dotted path among *already imported* modules only.

    Importing a module named by stored data would let whoever writes the database run
    import-time code; looking only in ``sys.modules`` keeps decoding side-effect free.
    """
    module_name, _, qualname = path.rpartition(".")
    # Nested classes: the module is the longest prefix that is a loaded module.
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name, qualname = ".".join(parts[:cut]), ".".join(parts[cut:])
        module = builtins if module_name == "builtins" else sys.modules.get(module_name)
        if module is None:
            continue
        obj: Any = module
        for attr in qualname.split("."):
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if isinstance(obj, type) and issubclass(obj, Exception):
            return obj
        return None
    return None


def _rebuild_error(data: dict[str, Any]) -> BaseException:
    message: str = data.get("message", "")
    type_path: str = data.get("type", "")
    rebuilt: BaseException
    if "code" in data:
        rebuilt = _rebuild_durakit_error(data)
    else:
        cls = _resolve_class(type_path)
        rebuilt = WorkflowExecutionError(f"{type_path}: {message}", error_type=type_path)
        if cls is not None and "args" in data:
            # A constructor that does not take its own args back keeps the generic error.
            with contextlib.suppress(Exception):
                rebuilt = cls(*data["args"])
    tb = data.get("traceback")
    if tb:
        rebuilt.add_note(f"Recorded traceback of the original error:\n{tb}")
    return rebuilt


def _rebuild_durakit_error(data: dict[str, Any]) -> DurakitError:
    cls = ERROR_CLASSES.get(ErrorCode[data["code"]], DurakitError)
    err = cls.__new__(cls)
    DurakitError.__init__(err, data.get("message", ""), **data.get("fields", {}))
    if isinstance(err, MaxStepRetriesExceededError):
        err.errors = [_rebuild_error(e) for e in data.get("errors", [])]
    if isinstance(err, WorkflowExecutionError):
        err.error_type = data.get("error_type")
    return err
