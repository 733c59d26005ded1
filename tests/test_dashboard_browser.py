"""The dashboard in a real browser: Playwright driving Debian's Chromium against an
application's admin server. Sign in, list, filter, page, detail with the step timeline,
cancel, resume and fork, with no console error; screenshots are kept as test artefacts
(``test-artifacts/dashboard/``, or ``$DURAKIT_TEST_ARTIFACTS``).

Under ``CI=true`` a missing browser fails the test; elsewhere it skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import durakit as dk
from tests.admin_support import AdminApp, wait_until
from tests.conftest import StoreFactory
from tests.helpers import WAIT

CHROMIUM = Path(os.environ.get("DURAKIT_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = (
    Path(
        os.environ.get(
            "DURAKIT_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"
        )
    )
    / "dashboard"
)
TOKEN = "dash-token"  # noqa: S105 - a test token, not a secret


def _require_browser() -> None:
    missing = None
    if not CHROMIUM.exists():
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is not installed (pip install -e '.[dev]')"
    if missing is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the browser test cannot run: {missing}")
    pytest.skip(missing)


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """The stores where the dashboard meets real SQL (memory adds nothing here)."""
    kind: str = request.param
    return kind


@pytest.fixture
def page(store_factory: StoreFactory) -> Iterator[tuple[Any, AdminApp]]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    made = AdminApp(store_factory(), admin_server=True, admin_port=0, admin_token=TOKEN)
    errors: list[str] = []
    with made.app, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 860})
            tab.set_default_timeout(WAIT * 1000)
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.goto(str(made.app.admin_url) + "/")
            yield tab, made
        finally:
            browser.close()
    assert errors == [], errors  # no console error anywhere in the session


def _shot(tab: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _ids(tab: Any) -> list[str]:
    rows = tab.locator("#workflows tbody tr")
    return [rows.nth(i).get_attribute("data-workflow-id") for i in range(rows.count())]


def _status(made: AdminApp, workflow_id: str) -> dk.StatusType:
    return made.app.get_workflow_status(workflow_id).status


def test_dashboard_list_filter_detail_cancel_resume_fork(
    page: tuple[Any, AdminApp], store_kind: str
) -> None:
    tab, made = page
    greeted = made.greetings(21)
    made.failure("bad")
    made.waiting("waiting")

    # Sign in: the page asks for the token before calling the API.
    tab.locator("#sign-in").wait_for(state="visible")
    tab.fill("#token-input", TOKEN)
    tab.click("#token-save")
    tab.locator("#workflows tbody tr").first.wait_for()
    assert _ids(tab) == ["waiting", "bad", *greeted[::-1]]  # newest first
    _shot(tab, f"list-{store_kind}")

    # Filter by status, then by name; paging.
    tab.select_option("#filter-status", "ERROR")
    tab.click("#filter-apply")
    tab.wait_for_function("document.querySelectorAll('#workflows tbody tr').length === 1")
    assert _ids(tab) == ["bad"]
    tab.click("#filter-clear")
    tab.fill("#filter-name", "greet")
    tab.select_option("#filter-limit", "20")
    tab.click("#filter-apply")
    tab.wait_for_function("document.querySelectorAll('#workflows tbody tr').length === 20")
    assert _ids(tab) == greeted[::-1][:20]
    assert tab.is_disabled("#page-prev")
    tab.click("#page-next")
    tab.wait_for_function("document.querySelectorAll('#workflows tbody tr').length === 1")
    assert _ids(tab) == [greeted[0]]
    assert tab.inner_text("#page-info") == "21\u201321"  # an en dash
    assert tab.is_disabled("#page-next")
    tab.click("#page-prev")
    tab.wait_for_function("document.querySelectorAll('#workflows tbody tr').length === 20")

    # Detail of the failed workflow: its error and its step on the timeline.
    tab.click("#filter-clear")
    tab.locator("a", has_text="bad").first.wait_for()
    tab.locator("#workflows a", has_text="bad").click()
    tab.locator("#detail-id", has_text="bad").wait_for()
    assert "RuntimeError: boom" in tab.inner_text("#detail-result")
    assert tab.locator("#timeline .step").count() == 1
    assert "one" in tab.inner_text("#timeline")

    # Cancel the waiting workflow, resume it, let it finish.
    tab.goto(f"{made.app.admin_url}/#/workflow/waiting")
    tab.locator("#detail-id", has_text="waiting").wait_for()
    tab.locator("#detail-status", has_text="PENDING").wait_for()
    tab.click("#btn-cancel")
    tab.locator("#detail-status", has_text="CANCELLED").wait_for()
    assert _status(made, "waiting") is dk.StatusType.CANCELLED
    assert "Cancelled waiting" in tab.inner_text("#message")
    tab.click("#btn-resume")
    tab.locator("#message", has_text="Resumed waiting").wait_for()
    made.app.send("waiting", "go", topic="go")
    wait_until(lambda: _status(made, "waiting") is dk.StatusType.SUCCESS)
    tab.click("#btn-refresh")
    tab.locator("#detail-status", has_text="SUCCESS").wait_for()
    assert "got go" in tab.inner_text("#detail-result")

    # A finished greeting: its two steps on the timeline, then a fork from step 1.
    tab.goto(f"{made.app.admin_url}/#/workflow/{greeted[0]}")
    tab.locator("#timeline .step").nth(1).wait_for()
    assert tab.locator("#timeline .step .bar").count() == 2
    assert "ms" in tab.inner_text("#timeline .step .duration >> nth=0")
    _shot(tab, f"detail-{store_kind}")
    tab.fill("#fork-step", "1")
    tab.click("#btn-fork")
    tab.locator("#message", has_text="Forked g000 from step 1 as").wait_for()
    forked = tab.inner_text("#message").rsplit(" as ", 1)[1].strip()
    assert made.app.retrieve_workflow(forked).get_result(timeout=WAIT) == "hello w0!"
    tab.click("#btn-refresh")
    tab.locator("#detail-id", has_text=forked).wait_for()
    tab.locator("#detail-status", has_text="SUCCESS").wait_for()
    _shot(tab, f"fork-{store_kind}")
