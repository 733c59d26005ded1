"""The payload format: typed JSON through cattrs with a format version, and recorded
exceptions. Round trips are property-tested: ``loads(dumps(x, T), T) == x``."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

import durakit as dk
from durakit.api.serialization import FORMAT_VERSION, Serializer
from durakit.core.errors import ERROR_CLASSES

SER = Serializer()


# -- types --------------------------------------------------------------------------------


class Suit(enum.Enum):
    HEARTS = "hearts"
    SPADES = "spades"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(enum.StrEnum):
    FAST = "fast"
    SAFE = "safe"


@attrs.frozen
class Point:
    x: int
    y: float


@dataclasses.dataclass(frozen=True)
class Tag:
    name: str
    weight: Decimal


@attrs.frozen
class Bundle:
    id: uuid.UUID
    when: datetime
    day: date
    suit: Suit
    level: Level
    mode: Mode
    points: list[Point]
    tags: dict[str, Tag]
    maybe: Point | None
    either: int | str
    shape: Point | Tag
    pair: tuple[int, str]
    ids: frozenset[uuid.UUID]
    nested: list[dict[str, list[int | None]]]
    counts: dict[int, str]
    blob: bytes


# Whole-second offsets: CPython 3.11 parses "+00:00:00.000001" back as UTC, an offset no
# real zone has (historic local mean times do have seconds, e.g. +00:19:32).
fixed_offsets = st.integers(-86399, 86399).map(lambda s: timezone(timedelta(seconds=s)))
datetimes = st.datetimes(timezones=st.none() | st.just(UTC) | fixed_offsets)
decimals = st.decimals(allow_nan=False)
floats = st.floats(allow_nan=False, allow_infinity=False)
points = st.builds(Point, x=st.integers(), y=floats)
tags = st.builds(Tag, name=st.text(), weight=decimals)

bundles = st.builds(
    Bundle,
    id=st.uuids(),
    when=datetimes,
    day=st.dates(),
    suit=st.sampled_from(Suit),
    level=st.sampled_from(Level),
    mode=st.sampled_from(Mode),
    points=st.lists(points, max_size=4),
    tags=st.dictionaries(st.text(), tags, max_size=3),
    maybe=st.none() | points,
    either=st.integers() | st.text(),
    shape=points | tags,
    pair=st.tuples(st.integers(), st.text()),
    ids=st.frozensets(st.uuids(), max_size=3),
    nested=st.lists(
        st.dictionaries(st.text(), st.lists(st.none() | st.integers(), max_size=3), max_size=3),
        max_size=3,
    ),
    counts=st.dictionaries(st.integers(), st.text(), max_size=3),
    blob=st.binary(max_size=16),
)

plain_json = st.recursive(
    st.none() | st.booleans() | st.integers() | floats | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def roundtrip(value: object, type_: Any) -> Any:
    return SER.loads(SER.dumps(value, type_), type_)


# -- typed values ---------------------------------------------------------------------------


@given(bundles)
def test_nested_attrs_and_dataclass_values_round_trip(bundle: Bundle) -> None:
    back = roundtrip(bundle, Bundle)
    assert back == bundle
    assert type(back.shape) is type(bundle.shape)
    assert type(back.either) is type(bundle.either)


SCALARS: list[tuple[Any, st.SearchStrategy[Any]]] = [
    (int, st.integers()),
    (float, floats),
    (str, st.text()),
    (bool, st.booleans()),
    (Decimal, decimals),
    (uuid.UUID, st.uuids()),
    (datetime, datetimes),
    (date, st.dates()),
    (Suit, st.sampled_from(Suit)),
    (Level, st.sampled_from(Level)),
    (list[int], st.lists(st.integers())),
    (set[str], st.sets(st.text())),
    (tuple[int, ...], st.lists(st.integers()).map(tuple)),
    (dict[str, Decimal], st.dictionaries(st.text(), decimals)),
    (dict[uuid.UUID, list[Point]], st.dictionaries(st.uuids(), st.lists(points, max_size=2))),
    (int | None, st.none() | st.integers()),
    (Tag | None, st.none() | tags),
    (list[Point | None], st.lists(st.none() | points, max_size=4)),
]


@pytest.mark.parametrize(("type_", "values"), SCALARS, ids=[repr(t) for t, _ in SCALARS])
@given(data=st.data())
def test_declared_types_round_trip(type_: Any, values: st.SearchStrategy[Any], data: Any) -> None:
    value = data.draw(values)
    back = roundtrip(value, type_)
    assert back == value
    assert type(back) is type(value)


@given(plain_json)
def test_plain_json_round_trips_without_a_declared_type(value: object) -> None:
    assert roundtrip(value, None) == value
    assert roundtrip(value, Any) == value


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 1, 1, tzinfo=UTC),
        Decimal("1.5"),
        uuid.UUID(int=5),
        (1, 2),
        {1, 2},
        {"nested": [Point(1, 2.0)]},
        {1: "int key"},
        Suit.HEARTS,
        object(),
    ],
    ids=repr,
)
def test_a_value_of_undeclared_type_that_is_not_plain_json_is_rejected(value: object) -> None:
    with pytest.raises(dk.SerializationError, match="not declared") as caught:
        SER.dumps(value, what="output of step 'x'")
    assert "output of step 'x'" in str(caught.value)
    assert caught.value.code is dk.ErrorCode.SERIALIZATION
    assert isinstance(caught.value, TypeError)


@pytest.mark.parametrize(
    ("value", "type_"),
    [(object(), Point), ("1 day", timedelta), ({"a": object()}, dict[str, Any])],
    ids=["object as attrs", "text as timedelta", "object in dict"],
)
def test_a_value_that_cannot_be_encoded_raises_serialization_error(
    value: object, type_: Any
) -> None:
    with pytest.raises(dk.SerializationError, match="input of workflow 'w'"):
        SER.dumps(value, type_, what="input of workflow 'w'")


@given(
    st.timedeltas(min_value=timedelta(days=-10_000), max_value=timedelta(days=10_000)),
    st.times(),
)
def test_durations_and_times_of_day_round_trip(delta: timedelta, tod: time) -> None:
    assert SER.loads(SER.dumps(delta, timedelta), timedelta) == delta
    assert SER.loads(SER.dumps(tod, time), time) == tod
    assert SER.loads(SER.dumps([delta], list[timedelta]), list[timedelta]) == [delta]


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def test_a_value_nested_too_deeply_is_a_serialization_error_on_write_and_read() -> None:
    deep = _nested(10_000)
    what = "output of step 's'"
    with pytest.raises(dk.SerializationError, match=what):
        SER.dumps(deep, what=what)
    with pytest.raises(dk.SerializationError, match=what):
        SER.dumps_payload(deep, what=what)
    with pytest.raises(dk.SerializationError, match=what):
        SER.dumps(deep, list[Any], what=what)
    text = '{"v": 1, "d": ' + "[" * 10_000 + "]" * 10_000 + "}"
    for type_ in (None, int):
        with pytest.raises(dk.SerializationError, match="output: JSON nested too deeply"):
            SER.loads(text, type_, what="output")


def test_data_that_does_not_fit_the_declared_type_is_refused_on_read() -> None:
    text = SER.dumps("not a number")
    with pytest.raises(dk.SerializationError, match="cannot be read back as int"):
        SER.loads(text, int, what="output")
    with pytest.raises(dk.SerializationError, match="Point"):
        SER.loads(SER.dumps({"x": 1}), Point)


# -- the envelope ---------------------------------------------------------------------------


def test_every_payload_carries_the_format_version() -> None:
    assert FORMAT_VERSION == 1
    assert json.loads(SER.dumps(Point(1, 2.5), Point)) == {"v": 1, "d": {"x": 1, "y": 2.5}}
    assert json.loads(SER.dumps(None)) == {"v": 1, "d": None}
    assert json.loads(SER.dumps(Decimal("1.10"), Decimal)) == {"v": 1, "d": "1.10"}
    assert json.loads(SER.dumps(Suit.SPADES, Suit)) == {"v": 1, "d": "spades"}
    error = json.loads(SER.dumps_error(ValueError("bad")))
    assert error["v"] == 1
    assert error["d"]["type"] == "builtins.ValueError"
    assert error["d"]["message"] == "bad"
    assert "ValueError: bad" in error["d"]["traceback"]


@pytest.mark.parametrize(
    "text",
    [
        '{"v": 2, "d": 1}',
        '{"v": 0, "d": 1}',
        '{"v": "1", "d": 1}',
        '{"d": 1}',
        "1",
        '[1, {"v": 1}]',
        "not json at all",
    ],
)
def test_a_payload_of_another_format_version_is_refused(text: str) -> None:
    with pytest.raises(dk.SerializationError, match="format"):
        SER.loads(text, int)
    with pytest.raises(dk.SerializationError, match="format"):
        SER.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"v": 2, "d": {"type": "builtins.ValueError", "message": "x", "args": ["x"]}}',
        '{"d": {"type": "builtins.ValueError", "message": "x", "args": ["x"]}}',
        "garbage",
    ],
)
def test_a_recorded_error_of_another_format_version_is_refused(text: str) -> None:
    with pytest.raises(dk.SerializationError, match="format"):
        SER.loads_error(text)


# -- errors ---------------------------------------------------------------------------------


class InsufficientFundsError(Exception):
    def __init__(self, needed: int, account: str) -> None:
        super().__init__(needed, account)
        self.needed = needed
        self.account = account


class MessageOnlyError(Exception):
    pass


def rebuild(exc: BaseException) -> BaseException:
    return SER.loads_error(SER.dumps_error(exc))


@given(st.text())
def test_builtin_exceptions_round_trip(message: str) -> None:
    for cls in (ValueError, KeyError, RuntimeError, TimeoutError, ZeroDivisionError):
        back = rebuild(cls(message))
        assert type(back) is cls
        assert back.args == (message,)


def test_an_os_error_keeps_its_subclass_and_errno() -> None:
    back = rebuild(FileNotFoundError(2, "No such file or directory"))
    assert type(back) is FileNotFoundError
    assert isinstance(back, FileNotFoundError)
    assert (back.errno, back.strerror) == (2, "No such file or directory")


def test_user_exception_classes_are_rebuilt_from_their_args() -> None:
    back = rebuild(InsufficientFundsError(50, "acct-1"))
    assert type(back) is InsufficientFundsError
    assert (back.needed, back.account) == (50, "acct-1")
    plain = rebuild(MessageOnlyError("just a message"))
    assert type(plain) is MessageOnlyError
    assert str(plain) == "just a message"


def test_the_recorded_traceback_is_attached_as_a_note() -> None:
    def fail() -> None:
        raise MessageOnlyError("deep")

    try:
        fail()
    except MessageOnlyError as exc:
        back = rebuild(exc)
    notes = "\n".join(getattr(back, "__notes__", []))
    assert "Recorded traceback" in notes
    assert "in fail" in notes
    assert "MessageOnlyError: deep" in notes


def _fields_for(cls: type[dk.DurakitError]) -> dict[str, Any]:
    return {
        "workflow_id": "wf-1",
        "destination_id": "dest",
        "step_name": "charge",
        "queue_name": "emails",
        "deduplication_id": "dedup",
        "step_id": 3,
        "expected_name": "a",
        "recorded_name": "b",
        "max_retries": 2,
    }


@pytest.mark.parametrize("cls", list(ERROR_CLASSES.values()), ids=lambda c: c.__name__)
def test_durakit_errors_round_trip_with_code_and_fields(cls: type[dk.DurakitError]) -> None:
    original = cls(f"{cls.__name__} happened", **_fields_for(cls))
    back = rebuild(original)
    assert type(back) is cls
    assert isinstance(back, dk.DurakitError)
    assert back.code is cls.code
    assert back.message == f"{cls.__name__} happened"
    assert str(back) == f"{cls.__name__} happened"
    assert back.fields() == _fields_for(cls)


def test_a_durakit_error_keeps_only_the_fields_that_were_set() -> None:
    back = rebuild(dk.UnexpectedStepError("moved", workflow_id="w", step_id=0))
    assert isinstance(back, dk.UnexpectedStepError)
    assert back.fields() == {"workflow_id": "w", "step_id": 0}
    assert back.recorded_name is None


def test_a_timeout_error_is_still_a_builtin_timeout_after_the_round_trip() -> None:
    back = rebuild(dk.DurakitTimeoutError("slow", workflow_id="w"))
    assert isinstance(back, TimeoutError)
    assert isinstance(back, dk.DurakitTimeoutError)


def test_max_step_retries_carries_every_nested_error() -> None:
    original = dk.MaxStepRetriesExceededError(
        "step 'pay' failed 3 times",
        errors=[
            ConnectionError("refused"),
            InsufficientFundsError(10, "acct-9"),
            dk.DurakitTimeoutError("slow", step_id=4),
        ],
        workflow_id="w",
        step_name="pay",
        max_retries=2,
    )
    back = rebuild(original)
    assert isinstance(back, dk.MaxStepRetriesExceededError)
    assert back.fields() == {"workflow_id": "w", "step_name": "pay", "max_retries": 2}
    assert [type(e) for e in back.errors] == [
        ConnectionError,
        InsufficientFundsError,
        dk.DurakitTimeoutError,
    ]
    assert str(back.errors[0]) == "refused"
    funds = back.errors[1]
    assert isinstance(funds, InsufficientFundsError)
    assert funds.needed == 10
    timeout = back.errors[2]
    assert isinstance(timeout, dk.DurakitTimeoutError)
    assert timeout.step_id == 4


def test_workflow_execution_error_keeps_its_error_type() -> None:
    back = rebuild(dk.WorkflowExecutionError("x.Y: boom", error_type="x.Y", workflow_id="w"))
    assert isinstance(back, dk.WorkflowExecutionError)
    assert back.error_type == "x.Y"
    assert back.workflow_id == "w"


def test_an_error_that_cannot_be_rebuilt_becomes_workflow_execution_error() -> None:
    class Local(Exception):
        pass

    local = rebuild(Local("hidden"))
    assert isinstance(local, dk.WorkflowExecutionError)
    assert local.error_type == f"{__name__}.{Local.__qualname__}"
    assert "hidden" in str(local)


def _recorded(type_path: str, args: list[Any]) -> str:
    data = {"type": type_path, "message": "m", "args": args}
    return json.dumps({"v": FORMAT_VERSION, "d": data})


def test_decoding_an_error_never_imports_modules_or_calls_non_exceptions() -> None:
    assert "antigravity" not in sys.modules
    not_imported = SER.loads_error(_recorded("antigravity.Fly", []))
    assert isinstance(not_imported, dk.WorkflowExecutionError)
    assert "antigravity" not in sys.modules

    called: list[str] = []
    sys.modules[__name__].__dict__["_probe"] = called.append
    try:
        not_called = SER.loads_error(_recorded(f"{__name__}._probe", ["was called"]))
    finally:
        del sys.modules[__name__].__dict__["_probe"]
    assert called == []
    assert isinstance(not_called, dk.WorkflowExecutionError)

    base = SER.loads_error(_recorded("builtins.SystemExit", [1]))
    assert isinstance(base, dk.WorkflowExecutionError)  # only Exception subclasses
