"""The admin HTTP server: endpoints, paging and filters, auth, errors as JSON (never a
500, fuzzed with hypothesis), and the real server started by launch() on every store."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import durakit as dk
from durakit.admin import build_app
from durakit.admin.codec import FILTER_KEYS
from tests.admin_support import AdminApp
from tests.conftest import StoreFactory
from tests.helpers import WAIT


@pytest.fixture
def admin(store_factory: StoreFactory) -> Iterator[AdminApp]:
    made = AdminApp(store_factory())
    with made.app:
        yield made


@pytest.fixture
def http(admin: AdminApp) -> Iterator[TestClient]:
    with TestClient(build_app(admin.app, token=None)) as client:
        yield client


def _page(http: TestClient, **body: Any) -> dict[str, Any]:
    response = http.post("/workflows", json=body)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def _ids(page: dict[str, Any]) -> list[str]:
    return [w["workflow_id"] for w in page["workflows"]]


def test_healthz(http: TestClient) -> None:
    assert http.get("/healthz").json() == {"status": "healthy", "token_required": False}


def test_list_pages_through_every_workflow(admin: AdminApp, http: TestClient) -> None:
    ids = admin.greetings(5)
    first = _page(http, limit=2)
    assert (_ids(first), first["offset"], first["limit"], first["next_offset"]) == (
        ids[:2],
        0,
        2,
        2,
    )
    second = _page(http, limit=2, offset=first["next_offset"])
    last = _page(http, limit=2, offset=second["next_offset"])
    assert _ids(second) + _ids(last) == ids[2:]
    assert last["next_offset"] is None
    assert _ids(_page(http, sort_desc=True, limit=3)) == ids[::-1][:3]
    assert _page(http)["limit"] == 100  # the default


def test_list_shows_workflow_fields_as_json(admin: AdminApp, http: TestClient) -> None:
    admin.greetings(1)
    (row,) = _page(http)["workflows"]
    assert row["status"] == "SUCCESS"
    assert row["name"] == "greet"
    assert (row["input"], row["output"]) == ("w0", "hello w0!")
    assert datetime.fromisoformat(row["created_at"]).tzinfo is not None
    assert set(row) >= {"workflow_id", "executor_id", "application_version", "attempts"}
    bare = _page(http, load_input=False, load_output=False)["workflows"][0]
    assert (bare["input"], bare["output"]) == (None, None)


def test_list_filters(admin: AdminApp, http: TestClient) -> None:
    greeted = admin.greetings(3)
    admin.failure("bad")
    assert _ids(_page(http, status="ERROR")) == ["bad"]
    assert _ids(_page(http, status=["ERROR", "SUCCESS"])) == [*greeted, "bad"]
    assert _ids(_page(http, name="fails")) == ["bad"]
    assert _ids(_page(http, workflow_id_prefix="g00")) == greeted
    assert _ids(_page(http, workflow_ids=["g001", "nope"])) == ["g001"]
    created = datetime.fromisoformat(
        _page(http, workflow_ids=["g001"])["workflows"][0]["created_at"]
    )
    since = _page(http, start_time=created.isoformat())
    assert _ids(since) == [*greeted[1:], "bad"]
    until = _page(http, end_time=created.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    assert _ids(until) == greeted[:2]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert _ids(_page(http, start_time=future)) == []
    assert _ids(_page(http, status=None, name=None)) == [*greeted, "bad"]  # null = any


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"limit": 1001}, "limit must be between 1 and 1000"),
        ({"limit": 0}, "limit must be between 1 and 1000"),
        ({"limit": True}, "limit must be an integer"),
        ({"offset": -1}, "offset must be between"),
        ({"offset": 2**70}, "offset must be between"),
        ({"status": "DONE"}, "unknown status 'DONE'"),
        ({"status": 3}, "status must be a string"),
        ({"colour": "red"}, "unknown filter(s) 'colour'"),
        ({"start_time": "yesterday"}, "start_time must be an ISO 8601 time"),
        ({"start_time": "2026-01-01T00:00:00"}, "must carry a UTC offset"),
        ({"workflow_ids": "g1"}, "workflow_ids must be a list of strings"),
        ({"sort_desc": "yes"}, "sort_desc must be true or false"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_list_requests_are_400_naming_the_problem(
    http: TestClient, body: Any, fragment: str
) -> None:
    response = http.post("/workflows", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "BAD_REQUEST"
    assert fragment in response.json()["error"]


def test_a_body_that_is_not_json_is_400(http: TestClient) -> None:
    response = http.post("/workflows", content=b"{not json")
    assert (response.status_code, response.json()["code"]) == (400, "BAD_REQUEST")
    response = http.post("/workflows", content=b"\xff\xfe")
    assert response.status_code == 400


def test_get_workflow_and_its_steps_with_times(admin: AdminApp, http: TestClient) -> None:
    admin.greetings(1)
    row = http.get("/workflows/g000").json()
    assert (row["workflow_id"], row["status"], row["output"]) == ("g000", "SUCCESS", "hello w0!")
    steps = http.get("/workflows/g000/steps").json()
    assert [(s["step_id"], s["name"], s["output"]) for s in steps] == [
        (0, "hello", "hello w0"),
        (1, "shout", "hello w0!"),
    ]
    for s in steps:
        started = datetime.fromisoformat(s["started_at"])
        assert started <= datetime.fromisoformat(s["completed_at"])


def test_a_failed_step_and_workflow_show_their_error(admin: AdminApp, http: TestClient) -> None:
    admin.failure("bad")
    row = http.get("/workflows/bad").json()
    assert row["error"] == {"type": "RuntimeError", "message": "boom"}
    assert [s["name"] for s in http.get("/workflows/bad/steps").json()] == ["one"]


@pytest.mark.parametrize("path", ["/workflows/nope", "/workflows/nope/steps"])
def test_a_missing_workflow_is_404(http: TestClient, path: str) -> None:
    response = http.get(path)
    assert (response.status_code, response.json()["code"]) == (404, "NON_EXISTENT_WORKFLOW")
    for action in ("cancel", "resume", "fork"):
        response = http.post(f"/workflows/nope/{action}", json={"start_step": 0})
        assert response.status_code == 404, action


def test_unknown_routes_and_methods_answer_json(http: TestClient) -> None:
    assert http.get("/nothing").json()["code"] == "NOT_FOUND"
    response = http.get("/workflows")
    assert (response.status_code, response.json()["code"]) == (405, "METHOD_NOT_ALLOWED")


def test_cancel_then_resume(admin: AdminApp, http: TestClient) -> None:
    admin.waiting("w")
    response = http.post("/workflows/w/cancel")
    assert response.json() == {"workflow_id": "w", "status": "CANCELLED"}
    response = http.post("/workflows/w/resume")
    assert response.json()["workflow_id"] == "w"
    admin.app.send("w", "go", topic="go")
    assert admin.app.retrieve_workflow("w").get_result(timeout=WAIT) == "got go"
    assert http.get("/workflows/w").json()["status"] == "SUCCESS"


def test_fork_runs_a_new_workflow_from_a_step(admin: AdminApp, http: TestClient) -> None:
    admin.greetings(1)
    response = http.post("/workflows/g000/fork", json={"start_step": 1, "forked_workflow_id": "f"})
    assert response.json() == {"workflow_id": "f", "forked_from": "g000", "start_step": 1}
    assert admin.app.retrieve_workflow("f").get_result(timeout=WAIT) == "hello w0!"
    again = http.post("/workflows/g000/fork", json={"start_step": 1, "forked_workflow_id": "f"})
    assert (again.status_code, again.json()["code"]) == (409, "CONFLICTING_ID")
    generated = http.post("/workflows/g000/fork", json={"start_step": 0}).json()["workflow_id"]
    assert admin.app.retrieve_workflow(generated).get_result(timeout=WAIT) == "hello w0!"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "fork needs start_step"),
        ({"start_step": "1"}, "start_step must be an integer"),
        ({"start_step": -1}, "start_step must be between"),
        ({"start_step": 1, "step": 2}, "unknown fork field(s) 'step'"),
        ({"start_step": 1, "forked_workflow_id": ""}, "forked_workflow_id must not be empty"),
        ({"start_step": 1, "application_version": "a\x00"}, "application_version must be valid"),
    ],
)
def test_bad_fork_requests_are_400(
    admin: AdminApp, http: TestClient, body: dict[str, Any], fragment: str
) -> None:
    admin.greetings(1)
    response = http.post("/workflows/g000/fork", json=body)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


def test_resume_and_fork_of_a_workflow_not_registered_here_are_409(
    admin: AdminApp, store_factory: StoreFactory
) -> None:
    admin.greetings(1)
    other = dk.Durakit(dk.Config(app_name="other", store=store_factory()))
    with other, TestClient(build_app(other, token=None)) as http:
        for action in ("resume", "fork"):
            response = http.post(f"/workflows/g000/{action}", json={"start_step": 0})
            assert response.status_code == 409
            assert response.json()["code"] == "WORKFLOW_NOT_REGISTERED"
            assert "'greet' is not registered" in response.json()["error"]


def test_without_the_application_resume_fork_and_recovery_are_409(
    admin: AdminApp, store_factory: StoreFactory
) -> None:
    admin.greetings(1)
    with (
        dk.Client(store=store_factory()) as client,
        TestClient(build_app(client, token=None)) as http,
    ):
        assert _ids(_page(http)) == ["g000"]  # reading works without the code
        for path in ("/workflows/g000/resume", "/workflows/g000/fork"):
            response = http.post(path, json={"start_step": 0})
            assert response.json()["code"] == "WORKFLOW_NOT_REGISTERED"
            assert "without the application" in response.json()["error"]
        response = http.post("/workflow-recovery", json=["local"])
        assert (response.status_code, response.json()["code"]) == (409, "WORKFLOW_NOT_REGISTERED")
        assert http.post("/workflows/g000/cancel").status_code == 200


def test_workflow_recovery_resumes_another_executors_pending_work(
    admin: AdminApp, http: TestClient
) -> None:
    admin.waiting("w")
    assert http.post("/workflow-recovery", json=["elsewhere"]).json() == []
    assert http.post("/workflow-recovery", json="local").status_code == 400
    assert http.post("/workflow-recovery", json=[1]).status_code == 400


# -- auth -------------------------------------------------------------------------------
def test_a_token_guards_everything_but_healthz_and_the_page(admin: AdminApp) -> None:
    admin.greetings(1)
    with TestClient(build_app(admin.app, token="s3cret")) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/").status_code == 200  # the page asks for the token itself
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = http.post("/workflows", json={}, headers=headers)
            assert response.status_code == 401
            assert response.json()["code"] == "UNAUTHORIZED"
        for method, path in [("GET", "/workflows/g000"), ("POST", "/workflows/g000/cancel")]:
            assert http.request(method, path).status_code == 401
        assert http.post("/workflow-recovery", json=[]).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert http.post("/workflows", json={}, headers=good).status_code == 200
        assert http.get("/workflows/g000", headers=good).json()["status"] == "SUCCESS"


# -- the real server, started by launch() ------------------------------------------------
def _call(url: str, body: object = None, token: str | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")  # noqa: S310
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:  # noqa: S310 - our URL
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _running_url(app: dk.Durakit) -> str | None:
    return app.admin_url


def test_launch_serves_the_admin_api_and_shutdown_stops_it(store_factory: StoreFactory) -> None:
    made = AdminApp(store_factory(), admin_server=True, admin_port=0, admin_token="tok")
    assert made.app.admin_url is None
    with made.app:
        url = _running_url(made.app)
        assert url is not None
        assert url.startswith("http://127.0.0.1:")
        made.greetings(2)
        assert _call(url + "/healthz") == (200, {"status": "healthy", "token_required": True})
        assert _call(url + "/workflows", {"limit": 1})[0] == 401
        status, page = _call(url + "/workflows", {"limit": 1}, token="tok")
        assert (status, _ids(page), page["next_offset"]) == (200, ["g000"], 1)
    assert made.app.admin_url is None
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/healthz", timeout=WAIT)  # noqa: S310 - our URL


def test_the_token_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, store_factory: StoreFactory
) -> None:
    monkeypatch.setenv("DURAKIT_ADMIN_TOKEN", "from-env")
    made = AdminApp(store_factory(), admin_server=True, admin_port=0)
    with made.app:
        assert made.app.admin_url is not None
        assert _call(made.app.admin_url + "/workflows", {})[0] == 401
        assert _call(made.app.admin_url + "/workflows", {}, token="from-env")[0] == 200


def test_a_host_beyond_loopback_needs_a_token() -> None:
    store = dk.MemoryStore()
    app = dk.Durakit(
        dk.Config(app_name="t", store=store, admin_server=True, admin_host="0.0.0.0")  # noqa: S104
    )
    with pytest.raises(dk.InitializationError, match=r"admin_host '0\.0\.0\.0'.*admin_token"):
        app.launch()
    assert app.admin_url is None


def test_a_port_in_use_fails_launch_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = dk.Durakit(
            dk.Config(app_name="t", store=dk.MemoryStore(), admin_server=True, admin_port=port)
        )
        with pytest.raises(dk.InitializationError, match=f"cannot listen on 127.0.0.1:{port}"):
            app.launch()
    with pytest.raises(dk.InitializationError, match="not launched"):
        app.recover_pending_workflows()  # launch() undid what it had done


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [("admin_port", -1, "admin_port out of range"), ("admin_token", " ", "admin_token")],
)
def test_admin_config_is_checked(field: str, value: object, fragment: str) -> None:
    with pytest.raises(dk.InitializationError, match=fragment):
        dk.Config(app_name="t", **{field: value})  # type: ignore[arg-type]


# -- fuzz: no input makes a 500 ----------------------------------------------------------
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
_filters = st.dictionaries(
    st.sampled_from(sorted(FILTER_KEYS)) | st.text(max_size=10), _json, max_size=4
)
_ids_text = st.text(max_size=30) | st.sampled_from(["g000", "w", "%2F", "a/steps", "\x00"])


def _post_any(http: TestClient, path: str, body: Any) -> Any:
    """POST ``body`` as Python's JSON writes it: NaN and Infinity included, as a
    careless client might send them."""
    return http.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def _well_formed(response: Any) -> None:
    assert response.status_code in (200, 400, 404, 405, 409), response.text
    if response.status_code != 200:
        body = response.json()
        assert set(body) == {"error", "code"}
        assert body["error"]


_fork_bodies = st.fixed_dictionaries(
    {"start_step": _json | st.integers(-2, 5)},
    optional={"forked_workflow_id": _json | _ids_text, "application_version": _json},
)
_fuzz = settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def seeded(admin: AdminApp, http: TestClient) -> TestClient:
    """The HTTP client, on a store with a finished and a failed workflow."""
    admin.greetings(1)
    admin.failure("bad")
    return http


@_fuzz
@given(body=_filters | _json)
def test_fuzz_list(seeded: TestClient, body: Any) -> None:
    _well_formed(_post_any(seeded, "/workflows", body))


@_fuzz
@given(
    wid=_ids_text,
    action=st.sampled_from(["", "/steps", "/cancel", "/resume", "/fork"]),
    body=_json | _fork_bodies,
)
def test_fuzz_workflow_routes(seeded: TestClient, wid: str, action: str, body: Any) -> None:
    path = "/workflows/" + urllib.parse.quote(wid, safe="") + action
    if action in ("", "/steps"):
        _well_formed(seeded.get(path))
    else:
        _well_formed(_post_any(seeded, path, body))


@_fuzz
@given(body=_fork_bodies)
def test_fuzz_fork_of_a_real_workflow(seeded: TestClient, body: Any) -> None:
    _well_formed(_post_any(seeded, "/workflows/g000/fork", body))


@_fuzz
@given(
    raw=st.binary(max_size=40),
    path=st.sampled_from(["/workflows", "/workflow-recovery", "/workflows/g000/fork"]),
)
def test_fuzz_raw_bodies(seeded: TestClient, raw: bytes, path: str) -> None:
    _well_formed(seeded.post(path, content=raw))


def test_the_dashboard_is_served_from_the_package_and_fetches_nothing_outside(
    http: TestClient,
) -> None:
    page = http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for path in ("/", "/static/app.js", "/static/app.css"):
        text = http.get(path).text
        assert "http://" not in text
        assert "https://" not in text
    assert "javascript" in http.get("/static/app.js").headers["content-type"]
    assert http.get("/static/missing.js").status_code == 404


def test_an_application_without_the_admin_server_does_not_load_the_web_stack() -> None:
    code = (
        "import sys, durakit as dk\n"
        "app = dk.Durakit(dk.Config(app_name='t', database_url='memory://'))\n"
        "with app: pass\n"
        "print(sorted(m for m in ('starlette', 'uvicorn', 'click', 'rich') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
