"""The workflow registry: names, declared types and options of an engine's workflows."""

from __future__ import annotations

import hashlib
import inspect
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs

from durakit.api.schedules import check_cron
from durakit.api.serialization import UNKNOWN
from durakit.api.validation import check_function, check_identifier
from durakit.api.workflow import Workflow
from durakit.core.errors import ConflictingRegistrationError, WorkflowExecutionError
from durakit.core.versions import code_fingerprint


@attrs.frozen(kw_only=True)
class WorkflowDef:
    """A registered workflow: what the engine needs to start, run and decode it."""

    name: str
    fn: Callable[..., Any]
    takes_input: bool
    input_type: Any
    output_type: Any
    max_recovery_attempts: int
    schedule: str | None = None

    def code_fingerprint(self) -> bytes:
        """Bytes that change when what the workflow's code does changes, and not when
        only its comments or formatting do (for the default app version)."""
        code = getattr(self.fn, "__code__", None)
        digest = code_fingerprint(code) if code is not None else b""
        return self.name.encode() + b"\0" + digest


def _inspect(fn: Callable[..., Any]) -> tuple[bool, Any, Any]:
    params = list(inspect.signature(fn).parameters.values())
    if len(params) not in (1, 2):
        raise ConflictingRegistrationError(
            f"workflow {getattr(fn, '__qualname__', fn)!r} must take (ctx) or (ctx, input); "
            f"it takes {len(params)} parameters"
        )
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: decode as plain JSON
        hints = {}
    input_type = hints.get(params[1].name, UNKNOWN) if len(params) == 2 else UNKNOWN
    return len(params) == 2, input_type, hints.get("return", UNKNOWN)


class Registry:
    """Workflows by name and by function; frozen once the engine launches."""

    def __init__(self) -> None:
        self._by_name: dict[str, WorkflowDef] = {}
        self._by_fn: dict[Callable[..., Any], WorkflowDef] = {}
        self._frozen = False

    def freeze(self) -> None:
        self._frozen = True

    def register(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        max_recovery_attempts: int,
        schedule: str | None,
    ) -> WorkflowDef:
        if isinstance(fn, Workflow):  # registered on another engine: register its function
            fn = fn.fn
        if name is None:
            derived = " (derived from the function's __module__ and __qualname__)"
            wf_name = check_identifier(
                "name", f"{fn.__module__}.{fn.__qualname__}", derived=derived
            )
        else:
            wf_name = check_identifier("name", name)
        unsupported = check_function(fn, "workflow")
        if unsupported is not None:
            raise ConflictingRegistrationError(
                f"cannot register workflow {wf_name!r}: {unsupported}"
            )
        if self._frozen:
            raise ConflictingRegistrationError(
                f"cannot register workflow {wf_name!r} after launch(); register first"
            )
        if wf_name in self._by_name or fn in self._by_fn:
            raise ConflictingRegistrationError(f"workflow {wf_name!r} is already registered")
        if max_recovery_attempts < 0:
            raise ConflictingRegistrationError(
                f"workflow {wf_name!r}: max_recovery_attempts must be >= 0"
            )
        takes_input, input_type, output_type = _inspect(fn)
        if schedule is not None:
            check_cron(wf_name, schedule)
            if not takes_input or input_type not in (datetime, UNKNOWN):
                raise ConflictingRegistrationError(
                    f"workflow {wf_name!r} has a schedule, so it must take the tick as its "
                    "input: (ctx, tick: datetime)"
                )
        defn = WorkflowDef(
            name=wf_name,
            fn=fn,
            takes_input=takes_input,
            input_type=input_type,
            output_type=output_type,
            max_recovery_attempts=max_recovery_attempts,
            schedule=schedule,
        )
        self._by_name[wf_name] = defn
        self._by_fn[fn] = defn
        return defn

    def by_fn(self, fn: Callable[..., Any]) -> WorkflowDef:
        """The definition of ``fn``: a registered function, or a :class:`Workflow` (of
        this engine or of another one that registered the same function)."""
        defn = self._by_fn.get(fn.fn if isinstance(fn, Workflow) else fn)
        if defn is None:
            raise WorkflowExecutionError(
                f"{getattr(fn, '__qualname__', fn)!r} is not a registered workflow of this "
                "engine; decorate it with @app.workflow() or call app.register_workflow()"
            )
        return defn

    def by_name(self, name: str) -> WorkflowDef | None:
        return self._by_name.get(name)

    def all(self) -> list[WorkflowDef]:
        return sorted(self._by_name.values(), key=lambda d: d.name)

    def version_hash(self) -> str:
        """A stable hash of every registered workflow's code: the default app version."""
        digest = hashlib.sha256()
        for defn in self.all():
            digest.update(defn.code_fingerprint())
        return digest.hexdigest()[:32]
