"""Recorded exceptions: what a workflow's or step's exception is stored as, and how any
process (a replay, a fork, another process awaiting the result) rebuilds it.

Stored: the class's module and ``__qualname__``, ``args`` (an argument that is not plain
JSON as its text), the plain-JSON part of ``__dict__``, the message and the traceback
text; an OSError adds errno, strerror and file names, a durakit error its code and fields.

Rebuilt: a class found among *already imported* modules that derives from ``Exception``
is created with ``__new__`` and given back its args and attributes. ``__init__`` is not
called: its signature need not match ``args`` (``Declined(code, reason)`` calling
``super().__init__(reason)``), and it could do anything. Builtin classes are the
exception: their constructors run no user code and set C-level fields from ``args``.
Anything else comes back as WorkflowExecutionError carrying the type name, message and
attributes. Nothing is imported: the class is looked up through ``sys.modules`` and plain
``__dict__`` lookups only, since ``getattr`` on a module with a module-level
``__getattr__`` can import (whoever can write the database must not run code here).

The plain-JSON rule (:func:`is_plain_json`) lives here too; payloads without a declared
type follow it as well.
"""

from __future__ import annotations

import sys
import traceback
import types
from typing import Any, Final

from durakit.core.errors import (
    ERROR_CLASSES,
    FIELD_NAMES,
    DurakitError,
    ErrorCode,
    MaxStepRetriesExceededError,
    WorkflowExecutionError,
    WorkflowInterrupted,
)

OS_ERROR_FIELDS: Final = ("errno", "strerror", "filename", "filename2")

# Restored from their own keys of a durakit error's record, not from its attributes.
_DURAKIT_OWN: Final = frozenset({"message", "errors", "error_type", *FIELD_NAMES})

# The base descriptors, so that no metaclass or module subclass can intercept a lookup.
_MODULE_DICT: Final[Any] = vars(types.ModuleType)["__dict__"]
_CLASS_DICT: Final[Any] = vars(type)["__dict__"]
_ARGS: Final[Any] = vars(BaseException)["args"]


def is_plain_json(value: object) -> bool:
    """None, bool, int, float, str, and lists and str-keyed dicts of them.

    Raises RecursionError on a value nested deeper than Python can walk.
    """
    if value is None or type(value) in (bool, int, float, str):
        return True
    if type(value) is list:
        return all(is_plain_json(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and is_plain_json(v) for k, v in value.items())
    return False


def _plain(value: object) -> bool:
    try:
        return is_plain_json(value)
    except RecursionError:
        return False


def safe_str(value: object) -> str:
    """``str(value)``, or a text naming its class if its ``__str__`` raises."""
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the error itself
        return f"<{type(value).__qualname__} object: str() failed>"


def safe_repr(value: object) -> str:
    """``repr(value)``, or a text naming its class if its ``__repr__`` raises."""
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not lose the error itself
        return f"<{type(value).__qualname__} object: repr() failed>"


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


# -- recording ------------------------------------------------------------------------------
def error_data(exc: BaseException) -> dict[str, Any]:
    """The JSON-able record of ``exc``; never raises for a misbehaving exception."""
    cls = type(exc)
    data: dict[str, Any] = {
        "type": f"{cls.__module__}.{cls.__qualname__}",
        "message": safe_str(exc),
        "traceback": _traceback_text(exc),
        "args": [a if _plain(a) else safe_str(a) for a in _args_of(exc)],
    }
    skip = _DURAKIT_OWN if isinstance(exc, DurakitError) else frozenset()
    attributes = {k: v for k, v in _attributes_of(exc).items() if k not in skip}
    if attributes:
        data["attributes"] = attributes
    if isinstance(exc, OSError):
        data["os_error"] = {
            n: v for n in OS_ERROR_FIELDS if (v := getattr(exc, n, None)) is not None and _plain(v)
        }
    if isinstance(exc, DurakitError):
        data["code"] = exc.code.name
        data["fields"] = {k: v for k, v in exc.fields().items() if _plain(v)}
        data["message"] = safe_str(exc.message)
        if isinstance(exc, MaxStepRetriesExceededError):
            data["errors"] = [error_data(e) for e in exc.errors]
        if isinstance(exc, WorkflowExecutionError):
            data["error_type"] = exc.error_type
    return data


def _traceback_text(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(exc))
    except Exception:  # noqa: BLE001 - the traceback is a courtesy, the error is the point
        return ""


def _args_of(exc: BaseException) -> list[object]:
    try:
        return list(exc.args)
    except Exception:  # noqa: BLE001 - an ``args`` property that raises: record none
        return []


def _attributes_of(exc: BaseException) -> dict[str, object]:
    try:
        items = list(vars(exc).items())
    except Exception:  # noqa: BLE001 - no readable __dict__: no attributes
        return {}
    return {k: v for k, v in items if type(k) is str and not _dunder(k) and _plain(v)}


# -- rebuilding -----------------------------------------------------------------------------
def rebuild_error(data: dict[str, Any]) -> Exception:
    """The exception recorded as ``data`` (see the module docstring); never raises."""
    type_path = data.get("type")
    type_path = type_path if isinstance(type_path, str) else ""
    message = safe_str(data.get("message", ""))
    try:
        rebuilt = _rebuild(data, type_path, message)
    except Exception:  # noqa: BLE001 - a class's __new__ or a malformed record: generic error
        rebuilt = _generic(data, type_path, message)
    tb = data.get("traceback")
    if isinstance(tb, str) and tb:
        BaseException.add_note(rebuilt, f"Recorded traceback of the original error:\n{tb}")
    return rebuilt


def _rebuild(data: dict[str, Any], type_path: str, message: str) -> Exception:
    cls = resolve_class(type_path)
    if "code" in data:
        return _rebuild_durakit(data, cls, type_path, message)
    if cls is None:
        return _generic(data, type_path, message)
    args = data.get("args")
    args = tuple(args) if isinstance(args, list) else (message,)
    exc: Exception | None = None
    if cls.__module__ == "builtins":
        try:
            exc = cls(*args)
        except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError whose bytes became text
            exc = None
    if type(exc) is not cls:
        exc = cls.__new__(cls)
        if not isinstance(exc, cls):
            return _generic(data, type_path, message)
        _ARGS.__set__(exc, args)
    _restore_attributes(exc, data)
    return exc


def _rebuild_durakit(
    data: dict[str, Any], cls: type[Exception] | None, type_path: str, message: str
) -> Exception:
    if cls is None or not issubclass(cls, DurakitError):
        code = ErrorCode.__members__.get(str(data["code"]))
        cls = None if code is None else ERROR_CLASSES.get(code)
    if cls is None:  # a code this version does not know (a newer durakit wrote it)
        return _generic(data, type_path, message)
    err = cls.__new__(cls)
    _restore_attributes(err, data)
    DurakitError.__init__(err, message, **_known_fields(data))
    if isinstance(err, MaxStepRetriesExceededError):
        nested = data.get("errors")
        nested = nested if isinstance(nested, list) else []
        err.errors = [rebuild_error(e) for e in nested if isinstance(e, dict)]
    if isinstance(err, WorkflowExecutionError):
        error_type = data.get("error_type")
        err.error_type = error_type if isinstance(error_type, str) else None
        carried = vars(err).get("attributes")
        err.attributes = carried if isinstance(carried, dict) else {}
    return err


def _restore_attributes(exc: Exception, data: dict[str, Any]) -> None:
    attributes = data.get("attributes")
    if isinstance(attributes, dict):
        vars(exc).update(
            {k: v for k, v in attributes.items() if isinstance(k, str) and not _dunder(k)}
        )
    os_fields = data.get("os_error")
    if isinstance(exc, OSError) and isinstance(os_fields, dict):
        for name in OS_ERROR_FIELDS:
            if name in os_fields:
                vars(OSError)[name].__set__(exc, os_fields[name])


def _known_fields(data: dict[str, Any]) -> dict[str, Any]:
    fields = data.get("fields")
    if not isinstance(fields, dict):
        return {}
    return {k: v for k, v in fields.items() if k in FIELD_NAMES and isinstance(v, str | int)}


def _generic(data: dict[str, Any], type_path: str, message: str) -> WorkflowExecutionError:
    attributes = data.get("attributes")
    return WorkflowExecutionError(
        f"{type_path}: {message}",
        error_type=type_path or None,
        attributes=attributes if isinstance(attributes, dict) else None,
        **_known_fields(data),
    )


def resolve_class(path: str) -> type[Exception] | None:
    """The ``Exception`` subclass named ``module.QualName``, if that module is already
    imported and the class is reachable there by plain ``__dict__`` lookups under its own
    name; else None. Never imports, never calls ``getattr`` on a module."""
    parts = path.split(".")
    # The module is the longest dotted prefix that is loaded; nested classes follow it.
    for cut in range(len(parts) - 1, 0, -1):
        module_name, qualname = ".".join(parts[:cut]), ".".join(parts[cut:])
        module: object = sys.modules.get(module_name)  # anything can be put there
        if module is None:
            continue
        if not isinstance(module, types.ModuleType):
            return None
        obj: object = module
        for name in parts[cut:]:
            if isinstance(obj, types.ModuleType):
                obj = _MODULE_DICT.__get__(obj).get(name)
            elif isinstance(obj, type):
                obj = _CLASS_DICT.__get__(obj).get(name)
            else:
                return None
        if (
            isinstance(obj, type)
            and issubclass(obj, Exception)
            and not issubclass(obj, WorkflowInterrupted)
            and obj.__module__ == module_name
            and obj.__qualname__ == qualname
        ):
            return obj
        return None
    return None
