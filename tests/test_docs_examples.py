"""The documentation's code is code that works, and its reference covers the public API.

* Every ``python`` block of README.md and docs/ is valid Python (fragments included).
* The examples of docs/concepts.md, which are fragments of a larger program, run once
  given what they leave out (tests/test_readme.py runs the complete programs of
  README.md and docs/getting-started.md).
* Every public name of ``durakit`` and ``durakit.testing`` has an entry (a ``:::``
  directive) in the reference pages under docs/reference/, which mkdocs builds from the
  docstrings.
"""

from __future__ import annotations

import ast
import contextlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

import durakit as dk
import durakit.testing
from durakit.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", flags=re.DOTALL | re.MULTILINE)
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def python_blocks(page: Path) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(page.read_text()) if m.group(1) == "python"]


def concepts_block(marker: str) -> str:
    """The one python block of docs/concepts.md that contains ``marker``."""
    found = [b for b in python_blocks(DOCS / "concepts.md") if marker in b]
    assert len(found) == 1, f"docs/concepts.md has {len(found)} python blocks with {marker!r}"
    return found[0]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_parses(page: Path) -> None:
    for number, block in enumerate(python_blocks(page), start=1):
        try:
            ast.parse(block)
        except SyntaxError as err:
            pytest.fail(f"{page.name}, python block {number}: {err}")


@attrs.frozen
class Order:
    id: str
    amount: int


@attrs.frozen
class Receipt:
    order_id: str
    charge_id: str


def test_the_first_concepts_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The example opens the default store, ./durakit.db: run it in an empty directory.
    monkeypatch.chdir(tmp_path)
    emailed: list[tuple[Order, str]] = []
    given: dict[str, Any] = {
        "Order": Order,
        "Receipt": Receipt,
        "order": Order("42", 30),
        "pay": lambda order: f"ch_{order.id}",
        "send_receipt": lambda order, charge: emailed.append((order, charge)),
    }
    exec(concepts_block("def checkout"), given)  # noqa: S102 - the documented example
    assert given["receipt"] == Receipt("42", "ch_42")
    assert emailed == [(Order("42", 30), "ch_42")]


def test_the_determinism_example_records_the_time_and_replays_it(store: dk.SystemStore) -> None:
    clock = FakeClock()
    start = clock.now_datetime()
    app = dk.Durakit(dk.Config(app_name="concepts", store=store, clock=clock))
    emails: list[tuple[str, str, datetime]] = []
    given: dict[str, Any] = {
        "dk": dk,
        "app": app,
        "uuid": __import__("uuid"),
        "datetime": datetime,
        "UTC": UTC,
        "timedelta": timedelta,
        "email": lambda user_id, token, sent_at: emails.append((user_id, token, sent_at)),
    }
    exec(concepts_block("def remind"), given)  # noqa: S102 - the documented example
    with app:
        app.run_workflow(given["remind"], "ada", workflow_id="remind-ada").get_result()
        # Steps 0-2 (token, time, sleep) replay from their records; "email" runs again.
        app.fork_workflow("remind-ada", start_step=3).get_result()
    first, replayed = emails
    assert first[0] == "ada"
    assert isinstance(first[2], datetime)
    assert replayed == first  # the replay got the recorded datetime back, as a datetime
    assert clock.now_datetime() == start + timedelta(days=1)  # one durable sleep, replayed


def documented_names() -> set[str]:
    directive = re.compile(r"^::: (\S+)$", flags=re.MULTILINE)
    return {
        name
        for page in (DOCS / "reference").glob("*.md")
        for name in directive.findall(page.read_text())
    }


@pytest.mark.parametrize(
    ("module", "names"),
    [("durakit", dk.__all__), ("durakit.testing", durakit.testing.__all__)],
)
def test_the_reference_has_an_entry_for_every_public_name(module: str, names: list[str]) -> None:
    missing = sorted({f"{module}.{name}" for name in names} - documented_names())
    assert not missing, f"add `::: NAME` to a page of docs/reference/ for: {missing}"


# -- claims of the docs that no behavioural test checked before -----------------------------
def test_the_identity_of_the_caller_is_recorded_shown_and_filterable(
    store: dk.SystemStore,
) -> None:
    """docs/management.md, "Who started a workflow"."""
    app = dk.Durakit(dk.Config(app_name="identity", store=store, clock=FakeClock()))

    @app.workflow(name="child")
    def child(ctx: dk.Context) -> str:
        return "child"

    @app.workflow(name="parent")
    def parent(ctx: dk.Context) -> str:
        return ctx.run_workflow(child, workflow_id="kid").get_result()

    with app:
        app.run_workflow(
            parent,
            workflow_id="p",
            authenticated_user="ana",
            authenticated_roles=["clerk", "admin"],
            assumed_role="clerk",
        ).get_result()
        app.run_workflow(child, workflow_id="other", authenticated_user="bo").get_result()
        status = app.get_workflow_status("p")
        assert (status.authenticated_user, status.authenticated_roles, status.assumed_role) == (
            "ana",
            ("clerk", "admin"),
            "clerk",
        )
        assert [w.workflow_id for w in app.list_workflows(user="ana")] == ["p"]
        kid = app.get_workflow_status("kid")  # a child does not inherit them
        assert (kid.authenticated_user, kid.authenticated_roles, kid.assumed_role) == (
            None,
            None,
            None,
        )


def test_a_waiting_recv_records_its_deadline_as_epoch_milliseconds(store: dk.SystemStore) -> None:
    """docs/management.md, "Look inside one": the durakit.sleep step before a recv."""
    clock = FakeClock()
    start_ms = int(clock.now() * 1000)
    app = dk.Durakit(dk.Config(app_name="steps", store=store, clock=clock))

    @app.workflow(name="waits")
    def waits(ctx: dk.Context) -> None:
        ctx.send(ctx.workflow_id, "here", topic="ready")  # step 0
        ctx.recv("ready", timeout=60)  # steps 1-2: the message is there, no wait
        with contextlib.suppress(dk.DurakitTimeoutError):
            ctx.recv("never", timeout=timedelta(minutes=5))  # steps 3-4: waits, times out

    with app:
        app.run_workflow(waits, workflow_id="w").get_result()
        steps = [(s.step_id, s.name, s.output) for s in app.get_workflow_steps("w")]
    assert steps[:2] == [(0, "durakit.send", None), (2, "durakit.recv", "here")]  # 1: a gap
    assert steps[2] == (3, "durakit.sleep", start_ms + 5 * 60 * 1000)
    assert steps[3][:2] == (4, "durakit.recv")
    assert datetime.fromtimestamp(steps[2][2] / 1000, UTC) == clock.now_datetime()


def test_getting_started_points_to_every_page() -> None:
    """Its "Where to go next" lists every page of docs/ (a folder by its index)."""
    text = (DOCS / "getting-started.md").read_text()
    where_next = text.split("## Where to go next", 1)[1]
    linked = set(re.findall(r"\]\(([^)#]+)\)", where_next))
    pages = {p.name for p in DOCS.glob("*.md")} - {"getting-started.md", "index.md"}
    folders = {f"{d.name}/index.md" for d in DOCS.iterdir() if d.is_dir()}
    assert pages | folders <= linked, sorted((pages | folders) - linked)
