"""The admin API's JSON: workflows and steps out, list filters in.

Shared by the admin server and the CLI's ``--json``, so both speak the same field names
(``WorkflowStatus``'s and ``StepInfo``'s, times as ISO 8601). Parsing is strict: an
unknown key or a value of the wrong type is a :class:`BadRequest` naming it, never
silently ignored and never a crash further down.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Final

import attrs

from durakit.api.management import Management
from durakit.api.serialization import Serializer
from durakit.api.status import StepInfo, WorkflowStatus
from durakit.core.status import StatusType

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 1000
MAX_OFFSET: Final = 2**53
"""Offsets and step numbers past this are refused: every store and JSON reader can hold it."""

_TEXT_FILTERS: Final = ("name", "user", "app_version", "workflow_id_prefix", "queue_name")
_LIST_FILTERS: Final = ("workflow_ids", "executor_ids")
_BOOL_FILTERS: Final = ("queues_only", "sort_desc", "load_input", "load_output")
_TIME_FILTERS: Final = ("start_time", "end_time")
FILTER_KEYS: Final = frozenset(
    (*_TEXT_FILTERS, *_LIST_FILTERS, *_BOOL_FILTERS, *_TIME_FILTERS, "status", "limit", "offset")
)


class BadRequest(Exception):
    """A malformed request: the admin server answers 400, the CLI exits 2."""


# -- out --------------------------------------------------------------------------------
def plain_json(value: Any, serializer: Serializer, depth: int = 0) -> Any:
    """``value`` as strict JSON data: text keys, lists for sequences, non-finite floats
    and anything else JSON cannot hold as text (browsers reject NaN)."""
    if depth > 200:  # a payload nested this deep is shown cut rather than overflowing
        return "..."
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain_json(v, serializer, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain_json(v, serializer, depth + 1) for v in value]
    if isinstance(value, BaseException):
        return error_json(value)
    plain = serializer.plain(value)
    if plain is value:  # nothing more to unstructure: show it as text
        return str(plain)
    return plain_json(plain, serializer, depth + 1)


def error_json(error: BaseException) -> dict[str, Any]:
    """A recorded error for display: its class name and message."""
    try:
        message = str(error)
    except Exception:  # noqa: BLE001 - a message that cannot be rendered is shown as missing
        message = "<unprintable message>"
    return {"type": type(error).__qualname__, "message": message}


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


_WORKFLOW_FIELDS: Final = tuple(f.name for f in attrs.fields(WorkflowStatus))


def workflow_json(status: WorkflowStatus, serializer: Serializer) -> dict[str, Any]:
    """One workflow, with ``WorkflowStatus``'s field names."""
    out: dict[str, Any] = {}
    for name in _WORKFLOW_FIELDS:
        value = getattr(status, name)
        kind = type(value)
        if value is None or kind is str or kind is int:  # most fields: as they are
            out[name] = value
        elif isinstance(value, StatusType):
            out[name] = value.value
        elif isinstance(value, timedelta):
            out[name] = value.total_seconds()
        elif isinstance(value, datetime):
            out[name] = value.isoformat()
        else:
            out[name] = plain_json(value, serializer)
    return out


def step_json(step: StepInfo, serializer: Serializer) -> dict[str, Any]:
    """One step, with ``StepInfo``'s field names."""
    return {
        "step_id": step.step_id,
        "name": step.name,
        "output": plain_json(step.output, serializer),
        "error": None if step.error is None else error_json(step.error),
        "child_workflow_id": step.child_workflow_id,
        "started_at": _time(step.started_at),
        "completed_at": _time(step.completed_at),
    }


def workflow_page(
    target: Management, filters: dict[str, Any], limit: int, offset: int
) -> dict[str, Any]:
    """One page of ``list_workflows``: ``{"workflows", "offset", "limit", "next_offset"}``;
    ``next_offset`` is None on the last page."""
    # One row past the page tells whether there is a next page, without a COUNT.
    rows = target.list_workflows(**filters, limit=limit + 1, offset=offset)
    return {
        "workflows": [workflow_json(w, target.serializer) for w in rows[:limit]],
        "offset": offset,
        "limit": limit,
        "next_offset": offset + limit if len(rows) > limit else None,
    }


# -- in ---------------------------------------------------------------------------------
def _text(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def parse_time(key: str, value: object) -> datetime:
    """An ISO 8601 time with a UTC offset (``2026-01-02T03:04:05Z``)."""
    text = _text(key, value)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{key} must be an ISO 8601 time, got {text[:60]!r}") from None
    if parsed.tzinfo is None:
        raise BadRequest(f"{key} must carry a UTC offset (e.g. 'Z' or '+02:00'): {text[:60]!r}")
    try:
        parsed.timestamp()
    except (OverflowError, ValueError, OSError):
        raise BadRequest(f"{key} is out of range: {text[:60]!r}") from None
    return parsed


def parse_int(key: str, value: object, *, low: int, high: int) -> int:
    """An integer in ``[low, high]`` (JSON ``true`` is not a number)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{key} must be an integer, got {_kind(value)}")
    if not low <= value <= high:
        raise BadRequest(f"{key} must be between {low} and {high}, got {value}")
    return value


def parse_statuses(value: object) -> list[StatusType]:
    """One status name or a list of them."""
    names = value if isinstance(value, list) else [value]
    out = []
    for name in names:
        text = _text("status", name)
        try:
            out.append(StatusType(text))
        except ValueError:
            known = ", ".join(s.value for s in StatusType)
            raise BadRequest(f"unknown status {text[:60]!r}; one of {known}") from None
    return out


def parse_filters(body: object) -> tuple[dict[str, Any], int, int]:
    """``list_workflows`` keyword arguments from a JSON object, and the page (limit, offset).

    ``limit`` defaults to 100 and is at most 1000; ``offset`` defaults to 0.
    """
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object of filters, got {_kind(body)}")
    unknown = sorted(set(body) - FILTER_KEYS)
    if unknown:
        raise BadRequest(
            f"unknown filter(s) {', '.join(repr(k[:60]) for k in unknown[:5])}; "
            f"known: {', '.join(sorted(FILTER_KEYS))}"
        )
    filters: dict[str, Any] = {}
    for key, value in body.items():
        if value is None:
            continue  # null means "any", as an absent key does
        if key in _TEXT_FILTERS:
            filters[key] = _text(key, value)
        elif key in _LIST_FILTERS:
            if not isinstance(value, list):
                raise BadRequest(f"{key} must be a list of strings, got {_kind(value)}")
            filters[key] = [_text(key, v) for v in value]
        elif key in _BOOL_FILTERS:
            if not isinstance(value, bool):
                raise BadRequest(f"{key} must be true or false, got {_kind(value)}")
            filters[key] = value
        elif key in _TIME_FILTERS:
            filters[key] = parse_time(key, value)
        elif key == "status":
            filters[key] = parse_statuses(value)
    limit = body.get("limit")
    offset = body.get("offset")
    limit = DEFAULT_LIMIT if limit is None else parse_int("limit", limit, low=1, high=MAX_LIMIT)
    offset = 0 if offset is None else parse_int("offset", offset, low=0, high=MAX_OFFSET)
    return filters, limit, offset


def parse_fork(body: object) -> tuple[int, str | None, str | None]:
    """``{"start_step": n, "forked_workflow_id"?: str, "application_version"?: str}``."""
    if not isinstance(body, dict):
        raise BadRequest(f"the fork body must be a JSON object, got {_kind(body)}")
    known = {"start_step", "forked_workflow_id", "application_version"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise BadRequest(
            f"unknown fork field(s) {', '.join(repr(k[:60]) for k in unknown[:5])}; "
            f"known: {', '.join(sorted(known))}"
        )
    if "start_step" not in body:
        raise BadRequest("fork needs start_step: the first step to run again")
    start = parse_int("start_step", body["start_step"], low=0, high=MAX_OFFSET)
    new_id = body.get("forked_workflow_id")
    version = body.get("application_version")
    return (
        start,
        None if new_id is None else _text("forked_workflow_id", new_id),
        None if version is None else _text("application_version", version),
    )
