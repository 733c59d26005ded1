"""The admin HTTP API and the dashboard's files, as a Starlette application.

A client of the public management API (an engine, or a ``Client`` for
``durakit dashboard``), never of store internals. Handlers are plain functions that
Starlette runs in its thread pool, since every management call blocks on the store.
Every answer is JSON: a malformed request is a 400, a missing workflow a 404, a
workflow this process cannot run a 409, and no input makes a 500.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from importlib.resources import files
from typing import Any, Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from durakit.admin.codec import (
    BadRequest,
    parse_filters,
    parse_fork,
    step_json,
    workflow_json,
    workflow_page,
)
from durakit.api.management import Control, Management
from durakit.api.recovery import Recovery
from durakit.api.validation import check_identifier
from durakit.core.errors import (
    ConflictingIDError,
    DurakitError,
    InitializationError,
    NonExistentWorkflowError,
    StoreUnavailableError,
)

STATIC: Final = ("durakit.admin", "static")
"""The dashboard's files, shipped inside the package: nothing is fetched at run time."""


class NotRegistered(Exception):
    """Resume, fork or recovery asked of a process that does not have the code."""


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status)


def _answer(call: Callable[[], Any]) -> Response:
    """Run a management call and turn what it raises into a JSON error."""
    try:
        return JSONResponse(call())
    except BadRequest as exc:
        return _error(400, "BAD_REQUEST", str(exc))
    except (TypeError, ValueError) as exc:  # the API's own argument checks
        return _error(400, "BAD_REQUEST", str(exc))
    except NotRegistered as exc:
        return _error(409, "WORKFLOW_NOT_REGISTERED", str(exc))
    except NonExistentWorkflowError as exc:
        return _error(404, exc.code.name, str(exc))
    except (StoreUnavailableError, InitializationError) as exc:
        return _error(503, exc.code.name, str(exc))
    except ConflictingIDError as exc:
        return _error(409, exc.code.name, str(exc))
    except DurakitError as exc:
        return _error(409, exc.code.name, str(exc))


async def _json_body(request: Request, *, default: Any) -> Any:
    raw = await request.body()
    if not raw.strip():
        return default
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("the body is not valid JSON") from None


def build_app(target: Management, *, token: str | None) -> Starlette:
    """The admin server's application over ``target`` (an engine or a ``Client``).

    With ``token``, every route but ``GET /healthz`` and the dashboard's files needs
    ``Authorization: Bearer <token>``.
    """
    serializer = target.serializer
    expected = None if token is None else token.encode()

    def authorized(request: Request) -> bool:
        if expected is None:
            return True
        given = request.headers.get("authorization", "")
        scheme, _, credential = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credential.strip().encode("utf-8", "surrogateescape"), expected
        )

    def denied() -> JSONResponse:
        response = _error(401, "UNAUTHORIZED", "missing or wrong bearer token")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    def workflow_id(request: Request) -> str:
        return check_identifier("workflow_id", request.path_params["workflow_id"])

    def control(what: str, name: str | None = None) -> Control:
        if isinstance(target, Control):
            if name is None or target.registry.by_name(name) is not None:
                return target
            raise NotRegistered(
                f"cannot {what}: workflow function {name!r} is not registered in this "
                "application; ask an admin server of an application that registers it"
            )
        raise NotRegistered(
            f"cannot {what}: this server runs without the application (durakit "
            "dashboard), so it has no workflow code; use the application's own admin server"
        )

    async def healthz(request: Request) -> Response:
        # token_required lets the dashboard ask for the token before its first call.
        return JSONResponse({"status": "healthy", "token_required": expected is not None})

    async def recovery(request: Request) -> Response:
        if not authorized(request):
            return denied()
        try:
            body = await _json_body(request, default=None)
        except BadRequest as exc:
            return _error(400, "BAD_REQUEST", str(exc))

        def call() -> Any:
            if not isinstance(body, list) or not all(isinstance(e, str) for e in body):
                raise BadRequest("the body must be a JSON list of executor IDs")
            engine = control("recover workflows")
            if not isinstance(engine, Recovery):  # pragma: no cover - every Control is one
                raise NotRegistered("cannot recover workflows here")
            return engine.recover_pending_workflows(body)

        return await run_in_threadpool(_answer, call)

    async def list_workflows(request: Request) -> Response:
        if not authorized(request):
            return denied()
        try:
            body = await _json_body(request, default={})
            filters, limit, offset = parse_filters(body)
        except BadRequest as exc:
            return _error(400, "BAD_REQUEST", str(exc))

        return await run_in_threadpool(
            _answer, lambda: workflow_page(target, filters, limit, offset)
        )

    def get_workflow(request: Request) -> Response:
        if not authorized(request):
            return denied()
        return _answer(
            lambda: workflow_json(target.get_workflow_status(workflow_id(request)), serializer)
        )

    def get_steps(request: Request) -> Response:
        if not authorized(request):
            return denied()

        def call() -> Any:
            wid = workflow_id(request)
            target.get_workflow_status(wid)  # a 404 for a workflow that does not exist
            return [step_json(s, serializer) for s in target.get_workflow_steps(wid)]

        return _answer(call)

    def cancel(request: Request) -> Response:
        if not authorized(request):
            return denied()

        def call() -> Any:
            wid = workflow_id(request)
            target.cancel_workflow(wid)
            return {"workflow_id": wid, "status": target.get_workflow_status(wid).status.value}

        return _answer(call)

    def resume(request: Request) -> Response:
        if not authorized(request):
            return denied()

        def call() -> Any:
            wid = workflow_id(request)
            engine = control("resume", target.get_workflow_status(wid).name)
            engine.resume_workflow(wid)
            return {"workflow_id": wid, "status": target.get_workflow_status(wid).status.value}

        return _answer(call)

    async def fork(request: Request) -> Response:
        if not authorized(request):
            return denied()
        try:
            start, new_id, version = parse_fork(await _json_body(request, default={}))
        except BadRequest as exc:
            return _error(400, "BAD_REQUEST", str(exc))

        def call() -> Any:
            wid = workflow_id(request)
            engine = control("fork", target.get_workflow_status(wid).name)
            handle = engine.fork_workflow(wid, start, new_id, version)
            return {"workflow_id": handle.workflow_id, "forked_from": wid, "start_step": start}

        return await run_in_threadpool(_answer, call)

    async def index(request: Request) -> Response:
        return FileResponse(_static_file("index.html"), media_type="text/html")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
        return _error(exc.status_code, codes.get(exc.status_code, "HTTP_ERROR"), exc.detail)

    wid = "/workflows/{workflow_id:path}"
    routes = [
        Route("/", index, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/workflow-recovery", recovery, methods=["POST"]),
        Route("/workflows", list_workflows, methods=["POST"]),
        # The action routes come first: an ID may hold "/", so the plain route is greedy.
        Route(wid + "/steps", get_steps, methods=["GET"]),
        Route(wid + "/cancel", cancel, methods=["POST"]),
        Route(wid + "/resume", resume, methods=["POST"]),
        Route(wid + "/fork", fork, methods=["POST"]),
        Route(wid, get_workflow, methods=["GET"]),
        Mount("/static", StaticFiles(packages=[STATIC]), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def _static_file(name: str) -> str:
    return str(files(STATIC[0]).joinpath(STATIC[1], name))
