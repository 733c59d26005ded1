"""Recorded exceptions, unit by unit: what ``dumps_error`` stores and what ``loads_error``
rebuilds from it.

An importable ``Exception`` subclass comes back as itself, built without calling its
``__init__``, with its args and the JSON part of its attributes; anything else comes back
as ``WorkflowExecutionError`` carrying the type name, message and attributes. Decoding
never imports a module and never calls anything but ``__new__`` of the class it found.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from datetime import datetime
from typing import Any

import pytest

import durakit as dk
from durakit.api.serialization import FORMAT_VERSION, Serializer

SER = Serializer()


def rebuild(exc: BaseException) -> BaseException:
    return SER.loads_error(SER.dumps_error(exc))


def recorded(data: dict[str, Any]) -> str:
    return json.dumps({"v": FORMAT_VERSION, "d": data})


class Declined(Exception):
    """Its ``__init__`` does not take its own ``args`` back."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class CodedError(Exception):
    def __init__(self, msg: str, code: int = 0) -> None:
        super().__init__(msg)
        self.code = code


class Outer:
    class NestedError(Exception):
        pass


INITS: list[str] = []


class NoisyInitError(Exception):
    def __init__(self, text: str) -> None:
        INITS.append(text)
        super().__init__(text)


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() is broken")

    def __repr__(self) -> str:
        raise RuntimeError("repr() is broken")


class RefusedError(dk.StepExecutionError):
    """A user subclass of a durakit error, with an attribute of its own."""


# -- user classes ----------------------------------------------------------------------------


def test_a_class_whose_init_takes_other_arguments_keeps_its_type_and_attributes() -> None:
    back = rebuild(Declined(402, "card refused"))
    assert type(back) is Declined
    assert (back.code, back.reason) == (402, "card refused")
    assert back.args == ("card refused",)
    assert str(back) == "card refused"


def test_a_keyword_attribute_is_restored_rather_than_defaulted() -> None:
    back = rebuild(CodedError("slow down", code=429))
    assert type(back) is CodedError
    assert back.code == 429
    assert str(back) == "slow down"


def test_init_is_not_called_when_rebuilding() -> None:
    original = NoisyInitError("once")
    del INITS[:]
    back = rebuild(original)
    assert type(back) is NoisyInitError
    assert back.args == ("once",)
    assert INITS == []


def test_a_nested_class_is_found_through_its_qualname() -> None:
    back = rebuild(Outer.NestedError("inside"))
    assert type(back) is Outer.NestedError
    assert str(back) == "inside"


def test_attributes_that_are_not_json_are_left_out() -> None:
    exc = Declined(402, "card refused")
    exc.when = datetime(2024, 1, 1)  # type: ignore[attr-defined]
    exc.pairs = (1, 2)  # type: ignore[attr-defined]
    exc.extra = {"ok": [1, None, "x"]}  # type: ignore[attr-defined]
    back = rebuild(exc)
    assert type(back) is Declined
    assert not hasattr(back, "when")
    assert not hasattr(back, "pairs")
    assert back.extra == {"ok": [1, None, "x"]}  # type: ignore[attr-defined]


def test_args_that_are_not_json_are_kept_as_their_text() -> None:
    back = rebuild(ValueError(datetime(2024, 1, 1), "why"))
    assert type(back) is ValueError
    assert back.args == ("2024-01-01 00:00:00", "why")
    single = rebuild(KeyError(datetime(2024, 1, 1)))
    assert type(single) is KeyError
    assert str(single) == "'2024-01-01 00:00:00'"


def test_an_os_error_keeps_its_errno_strerror_and_filename() -> None:
    back = rebuild(FileNotFoundError(2, "No such file or directory", "/nope"))
    assert type(back) is FileNotFoundError
    assert (back.errno, back.strerror, back.filename) == (2, "No such file or directory", "/nope")
    assert str(back) == "[Errno 2] No such file or directory: '/nope'"


def test_a_user_subclass_of_a_durakit_error_keeps_its_class_and_attributes() -> None:
    exc = RefusedError("refused", workflow_id="w", step_id=1)
    exc.retry_after = 30  # type: ignore[attr-defined]
    back = rebuild(exc)
    assert type(back) is RefusedError
    assert back.code is dk.ErrorCode.STEP_EXECUTION
    assert back.fields() == {"workflow_id": "w", "step_id": 1}
    assert back.retry_after == 30  # type: ignore[attr-defined]


# -- str / repr that raise -------------------------------------------------------------------


def test_an_exception_whose_str_and_repr_raise_is_recorded_with_a_fallback_message() -> None:
    text = SER.dumps_error(UnprintableError("x"))
    data = json.loads(text)["d"]
    assert "UnprintableError" in data["message"]
    assert data["args"] == ["x"]
    back = SER.loads_error(text)
    assert type(back) is UnprintableError
    assert back.args == ("x",)


def test_an_argument_whose_str_raises_is_recorded_by_its_class_name() -> None:
    back = rebuild(ValueError(UnprintableError("inner")))
    assert type(back) is ValueError
    assert "UnprintableError" in back.args[0]


# -- what is not rebuilt ---------------------------------------------------------------------


def test_a_class_that_is_not_importable_becomes_workflow_execution_error_with_attributes() -> None:
    class LocalDeclined(Exception):
        def __init__(self, code: int, reason: str) -> None:
            super().__init__(reason)
            self.code = code

    back = rebuild(LocalDeclined(402, "card refused"))
    assert isinstance(back, dk.WorkflowExecutionError)
    assert back.error_type == f"{__name__}.{LocalDeclined.__qualname__}"
    assert back.attributes == {"code": 402}
    assert "card refused" in str(back)


@pytest.mark.parametrize(
    "type_path",
    [
        "builtins.KeyboardInterrupt",
        "builtins.SystemExit",
        "builtins.GeneratorExit",
        "builtins.BaseException",
        "durakit.core.errors.WorkflowCancelledSignal",
        "durakit.core.errors.WorkflowInterrupted",
        "builtins.int",
        "builtins.print",
        "durakit.core.errors.ErrorCode",
        "json.decoder.JSONDecodeError.__init__",
        f"{__name__}.Declined.__dict__",
    ],
)
def test_only_exception_subclasses_are_rebuilt(type_path: str) -> None:
    back = SER.loads_error(recorded({"type": type_path, "message": "m", "args": [1]}))
    assert type(back) is dk.WorkflowExecutionError
    assert back.error_type == type_path


def test_a_class_reached_under_another_name_is_not_rebuilt() -> None:
    # ``socket.timeout`` is an alias of TimeoutError: the stored path must be the class's own.
    import socket

    assert socket.timeout is TimeoutError
    back = SER.loads_error(recorded({"type": "socket.timeout", "message": "m", "args": []}))
    assert type(back) is dk.WorkflowExecutionError


def test_an_unknown_error_code_does_not_raise() -> None:
    data = {
        "type": "durakit.core.errors.FromTheFutureError",
        "message": "newer durakit",
        "code": "NOPE",
        "fields": {"workflow_id": "w", "not_a_field": 1},
    }
    back = SER.loads_error(recorded(data))
    assert type(back) is dk.WorkflowExecutionError
    assert back.error_type == "durakit.core.errors.FromTheFutureError"
    assert "newer durakit" in str(back)


def test_malformed_durakit_fields_are_ignored_not_raised() -> None:
    data = {
        "type": "durakit.core.errors.UnexpectedStepError",
        "message": "moved",
        "code": "UNEXPECTED_STEP",
        "fields": {"workflow_id": "w", "step_id": 2, "bogus": True},
    }
    back = SER.loads_error(recorded(data))
    assert type(back) is dk.UnexpectedStepError
    assert back.fields() == {"workflow_id": "w", "step_id": 2}


@pytest.mark.parametrize(
    "data",
    [
        {"type": 3, "message": ["x"], "args": "no", "attributes": [1], "traceback": 7},
        {"type": "builtins.ValueError", "args": [1], "attributes": {"__class__": "x"}},
        {"code": "MAX_STEP_RETRIES_EXCEEDED", "errors": ["not an object", {"type": None}]},
        {},
    ],
)
def test_a_malformed_record_still_decodes_to_an_exception(data: dict[str, Any]) -> None:
    assert isinstance(SER.loads_error(recorded(data)), Exception)


def test_deeply_nested_json_is_a_serialization_error_not_a_recursion_error() -> None:
    deep = '{"v": 1, "d": ' + "[" * 10_000 + "]" * 10_000 + "}"
    with pytest.raises(dk.SerializationError, match="error of workflow 'w'"):
        SER.loads_error(deep, what="error of workflow 'w'")
    with pytest.raises(dk.SerializationError):
        SER.loads(deep)


# -- decoding never imports ------------------------------------------------------------------


def test_a_lazy_module_attribute_is_never_asked_for() -> None:
    asked: list[str] = []
    lazy = types.ModuleType("durakit_test_lazy_module")

    def module_getattr(name: str) -> Any:
        asked.append(name)
        raise AttributeError(name)

    lazy.__getattr__ = module_getattr  # type: ignore[method-assign]
    sys.modules[lazy.__name__] = lazy
    try:
        before = set(sys.modules)
        back = SER.loads_error(recorded({"type": f"{lazy.__name__}.Thing", "message": "m"}))
        nested = SER.loads_error(recorded({"type": f"{lazy.__name__}.Thing.Inner", "message": "m"}))
        assert set(sys.modules) == before
    finally:
        del sys.modules[lazy.__name__]
    assert asked == []
    assert isinstance(back, dk.WorkflowExecutionError)
    assert isinstance(nested, dk.WorkflowExecutionError)


def test_a_lazily_importable_stdlib_attribute_imports_nothing() -> None:
    # In a fresh interpreter, ``concurrent.futures.ProcessPoolExecutor`` is loaded on first
    # access through the package's ``__getattr__``, which imports multiprocessing.
    script = textwrap.dedent(
        """
        import concurrent.futures, json, sys
        from durakit.api.serialization import Serializer
        assert "concurrent.futures.process" not in sys.modules
        before = set(sys.modules)
        for path in ("concurrent.futures.ProcessPoolExecutor.x",
                     "concurrent.futures.ProcessPoolExecutor",
                     "concurrent.futures.process.BrokenProcessPool"):
            data = {"type": path, "message": "m", "args": []}
            err = Serializer().loads_error(json.dumps({"v": 1, "d": data}))
            assert type(err).__name__ == "WorkflowExecutionError", err
        print(sorted(set(sys.modules) - before))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- misbehaving exceptions and odd records -------------------------------------------------


class StrictNewError(Exception):
    def __new__(cls, *args: object) -> StrictNewError:
        if not args:
            raise TypeError("StrictNewError needs its arguments")
        return super().__new__(cls, *args)


class ArgslessError(Exception):
    @property
    def args(self) -> tuple[object, ...]:  # type: ignore[override]
        raise RuntimeError("no args for you")


def test_a_class_whose_new_refuses_is_workflow_execution_error() -> None:
    back = rebuild(StrictNewError("picky"))
    assert type(back) is dk.WorkflowExecutionError
    assert back.error_type == f"{__name__}.StrictNewError"


def test_an_args_property_that_raises_records_no_args() -> None:
    data = json.loads(SER.dumps_error(ArgslessError("x")))["d"]
    assert data["args"] == []


def test_an_attribute_nested_deeper_than_python_can_walk_is_left_out() -> None:
    deep: list[Any] = []
    for _ in range(10_000):
        deep = [deep]
    exc = Declined(1, "deep")
    exc.deep = deep  # type: ignore[attr-defined]
    back = rebuild(exc)
    assert type(back) is Declined
    assert not hasattr(back, "deep")


def test_a_builtin_whose_args_became_text_is_still_rebuilt_as_itself() -> None:
    original = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    back = rebuild(original)  # the bytes argument is recorded as its text
    assert type(back) is UnicodeDecodeError
    assert back.args == ("utf-8", "b'\\xff'", 0, 1, "invalid start byte")


def test_something_that_is_not_a_module_in_sys_modules_is_not_searched() -> None:
    sys.modules["durakit_test_not_a_module"] = Outer  # type: ignore[assignment]
    try:
        path = "durakit_test_not_a_module.NestedError"
        back = SER.loads_error(recorded({"type": path, "message": "m"}))
    finally:
        del sys.modules["durakit_test_not_a_module"]
    assert type(back) is dk.WorkflowExecutionError
