"""One row that cannot be decoded never breaks reading the others, on every store.

Rows are written through the store directly, as an older version of the application (an
attrs class that has since gained a required field), a damaged database or a hostile
writer would leave them. Listing and inspecting show such a field as its plain JSON (or
its raw text when even JSON fails) and log a warning naming the workflow and the field;
only ``get_result()`` raises, a SerializationError naming both.
"""

from __future__ import annotations

import json
import logging

import attrs
import pytest

import durakit as dk
from durakit.api.serialization import Serializer
from durakit.core.records import Fence, NewWorkflow, StepRecord
from tests.helpers import WAIT, new_app
from tests.records_support import finish

SER = Serializer()
DEEP = '{"v":1,"d":' + "[" * 10_000 + "]" * 10_000 + "}"
NOT_JSON = "{not json"


@attrs.frozen
class ParcelV1:
    """What the application stored before ``weight`` was added."""

    sku: str


@attrs.frozen
class Parcel:
    sku: str
    weight: int


def ship(ctx: dk.Context, parcel: Parcel) -> Parcel:
    return parcel


GOOD_IN = SER.dumps(Parcel("a", 1), Parcel)
GOOD_OUT = GOOD_IN
UNKNOWN_CODE_ERROR = json.dumps(
    {
        "v": 1,
        "d": {
            "type": "durakit.core.errors.FromTheFutureError",
            "message": "written by a newer durakit",
            "code": "NOPE",
            "fields": {"workflow_id": "nope-error"},
        },
    }
)

# workflow ID -> (input, output, error); SUCCESS when there is no error
ROWS: dict[str, tuple[str, str | None, str | None]] = {
    "ok": (GOOD_IN, GOOD_OUT, None),
    "old-input": (SER.dumps(ParcelV1("b"), ParcelV1), GOOD_OUT, None),
    "old-output": (GOOD_IN, SER.dumps(ParcelV1("c"), ParcelV1), None),
    "deep-output": (GOOD_IN, DEEP, None),
    "deep-error": (GOOD_IN, None, DEEP),
    "garbage-error": (GOOD_IN, None, NOT_JSON),
    "list-error": (GOOD_IN, None, '{"v":1,"d":["not", "an", "object"]}'),
    "nope-error": (GOOD_IN, None, UNKNOWN_CODE_ERROR),
}


def write_rows(store: dk.SystemStore) -> None:
    for n, (wid, (input_, output, error)) in enumerate(ROWS.items()):
        store.insert_workflow(
            NewWorkflow(
                workflow_id=wid,
                name="ship",
                status=dk.StatusType.PENDING,
                input=input_,
                executor_id="elsewhere",
                application_version="v0",
                owner="writer",
                created_at=1_700_000_000_000 + n,
            )
        )
        fence = Fence(workflow_id=wid, owner="writer")
        if wid == "ok":
            store.record_step(fence, StepRecord(step_id=0, name="fine", output=SER.dumps(1)))
            store.record_step(fence, StepRecord(step_id=1, name="deep", output=DEEP))
            store.record_step(fence, StepRecord(step_id=2, name="broken", error=NOT_JSON))
        status = dk.StatusType.ERROR if error is not None else dk.StatusType.SUCCESS
        finish(store, fence, status, output, error, 1_700_000_001_000)


def warnings(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_listing_shows_every_row_and_warns_about_the_bad_fields(
    store: dk.SystemStore, caplog: pytest.LogCaptureFixture
) -> None:
    write_rows(store)
    app = new_app(store)
    app.register_workflow(ship, name="ship")
    caplog.set_level(logging.WARNING, logger="durakit")
    with app:
        listed = {s.workflow_id: s for s in app.list_workflows()}
        assert sorted(listed) == sorted(ROWS)
        assert listed["ok"].input == Parcel("a", 1)
        assert listed["ok"].output == Parcel("a", 1)
        assert listed["old-input"].input == {"sku": "b"}  # its plain JSON
        assert listed["old-input"].output == Parcel("a", 1)
        assert listed["old-output"].output == {"sku": "c"}
        assert listed["deep-output"].output == DEEP  # not even JSON: the raw text
        for wid in ("deep-error", "garbage-error", "list-error"):
            error = listed[wid].error
            assert isinstance(error, dk.SerializationError)
            assert f"error of workflow {wid!r}" in str(error)
        # An error code this version does not know is an error class it cannot import.
        future = listed["nope-error"].error
        assert isinstance(future, dk.WorkflowExecutionError)
        assert future.error_type == "durakit.core.errors.FromTheFutureError"
        assert future.workflow_id == "nope-error"
        assert "written by a newer durakit" in str(future)

        logged = warnings(caplog)
        for wid, field in [
            ("old-input", "input"),
            ("old-output", "output"),
            ("deep-output", "output"),
            ("deep-error", "error"),
            ("garbage-error", "error"),
            ("list-error", "error"),
        ]:
            assert f"{field} of workflow {wid!r}" in logged
        assert "'ok'" not in logged
        assert "nope-error" not in logged
        tagged = {getattr(r, "workflow_id", None) for r in caplog.records}
        assert tagged == {"old-input", "old-output", "deep-output", "deep-error"} | {
            "garbage-error",
            "list-error",
        }

        caplog.clear()
        single = app.get_workflow_status("old-output")
        assert single.output == {"sku": "c"}
        assert "output of workflow 'old-output'" in warnings(caplog)


def test_only_get_result_raises_naming_the_workflow_and_the_field(
    store: dk.SystemStore,
) -> None:
    write_rows(store)
    app = new_app(store)
    app.register_workflow(ship, name="ship")
    with app:
        assert app.retrieve_workflow("ok").get_result(WAIT) == Parcel("a", 1)
        assert app.retrieve_workflow("old-input").get_result(WAIT) == Parcel("a", 1)
        for wid, field in [
            ("old-output", "output"),
            ("deep-output", "output"),
            ("deep-error", "error"),
            ("garbage-error", "error"),
            ("list-error", "error"),
        ]:
            with pytest.raises(dk.SerializationError, match=f"{field} of workflow {wid!r}"):
                app.retrieve_workflow(wid).get_result(WAIT)
        with pytest.raises(dk.WorkflowExecutionError, match="written by a newer durakit"):
            app.retrieve_workflow("nope-error").get_result(WAIT)


def test_steps_that_cannot_be_decoded_are_shown_undecoded(
    store: dk.SystemStore, caplog: pytest.LogCaptureFixture
) -> None:
    write_rows(store)
    caplog.set_level(logging.WARNING, logger="durakit")
    with dk.Client(store=store) as client:
        steps = client.get_workflow_steps("ok")
        listed = {s.workflow_id: s for s in client.list_workflows()}
    assert [(s.step_id, s.name) for s in steps] == [(0, "fine"), (1, "deep"), (2, "broken")]
    assert steps[0].output == 1
    assert steps[1].output == DEEP
    assert isinstance(steps[2].error, dk.SerializationError)
    logged = warnings(caplog)
    assert "output of step 1 ('deep') of workflow 'ok'" in logged
    assert "error of step 2 ('broken') of workflow 'ok'" in logged
    # A client decodes without the workflow's types: the old shapes are plain JSON anyway.
    assert sorted(listed) == sorted(ROWS)
    assert listed["old-output"].output == {"sku": "c"}
    assert listed["deep-output"].output == DEEP
