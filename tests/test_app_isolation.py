"""Two applications on one database (the defaults: one SQLite file, one schema, executor
"local") do not run each other's workflows."""

from __future__ import annotations

import pytest

import durakit as dk
from durakit.api.serialization import Serializer
from durakit.core.records import NewWorkflow, WorkflowQuery
from tests.conftest import StoreFactory
from tests.helpers import WAIT, Counts


def engine(store: dk.SystemStore, app_name: str) -> dk.Durakit:
    return dk.Durakit(
        dk.Config(app_name=app_name, store=store, executor_id="local", application_version="v1")
    )


def test_recovery_leaves_another_applications_pending_work_alone(
    store_factory: StoreFactory,
) -> None:
    store = store_factory()
    counts = Counts()
    billing = engine(store, "billing")

    @billing.workflow(name="process")
    def charge(ctx: dk.Context, order: str) -> str:
        counts.bump("billing")
        return ctx.run_step(lambda: f"charged {order}", name="charge")

    # billing's workflow is PENDING, as after a crash of its process.
    with billing:
        billing.store.insert_workflow(
            dk_new_workflow(billing, "order-1", Serializer().dumps("o-1", str))
        )

    shipping = engine(store, "shipping")

    @shipping.workflow(name="process")  # the same workflow name, other code
    def ship(ctx: dk.Context, order: str) -> str:
        counts.bump("shipping")
        return ctx.run_step(lambda: f"shipped {order}", name="ship")

    with shipping:
        assert shipping.recover_pending_workflows() == []
        assert shipping.get_workflow_status("order-1").status is dk.StatusType.PENDING

    billing_again = engine(store, "billing")
    billing_again.register_workflow(charge, name="process")
    with billing_again:
        result = billing_again.retrieve_workflow("order-1").get_result(timeout=WAIT)
    assert result == "charged o-1"
    assert counts.as_dict() == {"billing": 1}


def dk_new_workflow(app: dk.Durakit, workflow_id: str, payload: str) -> NewWorkflow:
    return NewWorkflow(
        workflow_id=workflow_id,
        name="process",
        status=dk.StatusType.PENDING,
        input=payload,
        executor_id="local",
        application_version="v1",
        application_id=app.config.app_name,
        owner="crashed-execution",
        created_at=1,
    )


@pytest.mark.parametrize("app_name", ["billing", "shipping"])
def test_listing_by_application(store_factory: StoreFactory, app_name: str) -> None:
    store = store_factory()
    for name in ("billing", "shipping"):
        store.insert_workflow(
            NewWorkflow(
                workflow_id=f"{name}-1",
                name="process",
                status=dk.StatusType.SUCCESS,
                input="null",
                executor_id="local",
                application_version="v1",
                application_id=name,
                created_at=1,
            )
        )
    rows = store.list_workflows(WorkflowQuery(application_id=app_name))
    assert [r.workflow_id for r in rows] == [f"{app_name}-1"]
