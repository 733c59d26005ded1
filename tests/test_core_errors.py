"""The error tree (``durakit.core.errors``): codes, fields, signals, copying."""

from __future__ import annotations

import copy
import pickle

import pytest

from durakit.core.errors import (
    ERROR_CLASSES,
    DurakitError,
    DurakitTimeoutError,
    ErrorCode,
    MaxStepRetriesExceededError,
    OwnershipLostSignal,
    SerializationError,
    StoreUnavailableSignal,
    UnexpectedStepError,
    WorkflowCancelledSignal,
    WorkflowExecutionError,
    WorkflowInterrupted,
)

SEED_ORDER = [
    "CONFLICTING_ID",
    "INITIALIZATION",
    "NON_EXISTENT_WORKFLOW",
    "CONFLICTING_WORKFLOW",
    "WORKFLOW_CANCELLED",
    "UNEXPECTED_STEP",
    "AWAITED_WORKFLOW_CANCELLED",
    "CONFLICTING_REGISTRATION",
    "WORKFLOW_UNEXPECTED_TYPE",
    "WORKFLOW_EXECUTION",
    "STEP_EXECUTION",
    "DEAD_LETTER_QUEUE",
    "MAX_STEP_RETRIES_EXCEEDED",
    "QUEUE_DEDUPLICATED",
]


def test_codes_keep_the_seed_order_then_durakit_additions() -> None:
    names = [code.name for code in ErrorCode]
    assert names[: len(SEED_ORDER)] == SEED_ORDER
    assert names[len(SEED_ORDER) :] == ["TIMEOUT", "SERIALIZATION", "STORE_UNAVAILABLE"]


@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda c: c.name)
def test_one_class_per_code_named_after_it(code: ErrorCode) -> None:
    cls = ERROR_CLASSES[code]
    assert cls.code is code
    assert issubclass(cls, DurakitError)
    camel = "".join(part.capitalize() for part in code.name.split("_")) + "Error"
    expected = "DurakitTimeoutError" if code is ErrorCode.TIMEOUT else camel
    assert cls.__name__.lower() == expected.lower()  # ID stays upper case in the class name
    err = cls("something went wrong", workflow_id="wf")
    assert err.code is code
    assert str(err) == "something went wrong"


def test_builtin_bases_where_the_api_promises_them() -> None:
    assert issubclass(DurakitTimeoutError, TimeoutError)
    assert issubclass(SerializationError, TypeError)


def test_fields_hold_only_what_was_set() -> None:
    err = DurakitError(
        "m", workflow_id="wf", step_id=0, queue_name="q", destination_id=None, max_retries=0
    )
    # 0 is a value, not "unset".
    assert err.fields() == {"workflow_id": "wf", "step_id": 0, "queue_name": "q", "max_retries": 0}
    assert DurakitError("m").fields() == {}
    assert err.message == "m"


def test_subclass_extras() -> None:
    failures = [ValueError("a"), KeyError("b")]
    retries = MaxStepRetriesExceededError("m", errors=failures, step_name="pay", max_retries=1)
    assert retries.errors == failures
    assert retries.errors is not failures  # a copy: the caller's list may change later
    assert retries.fields() == {"step_name": "pay", "max_retries": 1}
    assert MaxStepRetriesExceededError("m").errors == []

    wrapped = WorkflowExecutionError("m", error_type="KeyError", workflow_id="wf")
    assert wrapped.error_type == "KeyError"
    assert wrapped.fields() == {"workflow_id": "wf"}
    assert WorkflowExecutionError("m").error_type is None
    carried = {"code": 402}
    with_attributes = WorkflowExecutionError("m", error_type="x.Declined", attributes=carried)
    assert with_attributes.attributes == {"code": 402}
    assert with_attributes.attributes is not carried  # a copy, like ``errors``
    assert WorkflowExecutionError("m").attributes == {}


def roundtrips(err: DurakitError) -> list[DurakitError]:
    return [copy.copy(err), copy.deepcopy(err), pickle.loads(pickle.dumps(err))]  # noqa: S301


@pytest.mark.parametrize("cls", list(ERROR_CLASSES.values()), ids=lambda c: c.__name__)
def test_errors_survive_copy_and_pickle(cls: type[DurakitError]) -> None:
    err = cls("m", workflow_id="wf", step_id=3, expected_name="a", recorded_name="b")
    for clone in roundtrips(err):
        assert type(clone) is cls
        assert str(clone) == "m"
        assert clone.fields() == err.fields()


def test_subclass_extras_survive_copy_and_pickle() -> None:
    retries = MaxStepRetriesExceededError("m", errors=[ValueError("a")], max_retries=0)
    for clone in roundtrips(retries):
        assert isinstance(clone, MaxStepRetriesExceededError)
        assert [repr(e) for e in clone.errors] == ["ValueError('a')"]
    wrapped = WorkflowExecutionError("m", error_type="KeyError", attributes={"code": 1})
    for clone in roundtrips(wrapped):
        assert isinstance(clone, WorkflowExecutionError)
        assert clone.error_type == "KeyError"
        assert clone.attributes == {"code": 1}


def test_errors_are_caught_through_the_base_class() -> None:
    with pytest.raises(DurakitError) as info:
        raise UnexpectedStepError("m", step_id=1)
    assert info.value.code is ErrorCode.UNEXPECTED_STEP


@pytest.mark.parametrize(
    ("signal", "reason"),
    [
        (WorkflowCancelledSignal("wf-1"), "cancelled"),
        (OwnershipLostSignal("wf-1"), "another execution owns it now"),
        (StoreUnavailableSignal("wf-1"), "the store is unavailable"),
        (WorkflowInterrupted("wf-1", "shutting down"), "shutting down"),
    ],
)
def test_signals_are_not_exceptions(signal: WorkflowInterrupted, reason: str) -> None:
    # User code's `except Exception` inside a workflow must not swallow them.
    assert not isinstance(signal, Exception)
    assert isinstance(signal, BaseException)
    assert signal.workflow_id == "wf-1"
    assert signal.reason == reason
    assert "wf-1" in str(signal)
    assert reason in str(signal)
    caught: BaseException | None = None
    try:
        try:
            raise signal
        except Exception:  # what a user's workflow might write
            pytest.fail("a control-flow signal was caught by `except Exception`")
    except WorkflowInterrupted as exc:
        caught = exc
    assert caught is signal
