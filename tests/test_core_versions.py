"""The default application version hashes compiled code, not source text."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest

from durakit.core.records import VersionMove, WorkflowRecord
from durakit.core.status import StatusType
from durakit.core.versions import code_fingerprint


def compiled(source: str, name: str = "wf", filename: str = "app.py") -> types.CodeType:
    namespace: dict[str, object] = {}
    code = compile(textwrap.dedent(source), filename, "exec", dont_inherit=True)
    exec(code, namespace)  # noqa: S102 - test code
    fn = namespace[name]
    assert isinstance(fn, types.FunctionType)
    return fn.__code__


BASE = """
def wf(ctx, order):
    total = order["qty"] * 2
    ok = ctx.run_step(lambda: total + 1, name="pay")
    return {"ok": ok, "kind": order["kind"] in {"a", "b", "c"}}
"""

SAME_BEHAVIOUR = """
# a comment above


def wf(ctx, order):  # and one here
    total = (
        order["qty"]
        * 2
    )

    # blank lines, a comment, another layout
    ok = ctx.run_step(
        lambda: total + 1,
        name="pay",
    )
    return {"ok": ok,
            "kind": order["kind"] in {"a", "b", "c"}}
"""


def test_comments_blank_lines_layout_file_and_position_do_not_change_it() -> None:
    base = code_fingerprint(compiled(BASE))
    assert code_fingerprint(compiled(SAME_BEHAVIOUR, filename="elsewhere.py")) == base
    assert code_fingerprint(compiled("\n\n\n" + BASE)) == base


def test_any_change_of_behaviour_changes_it() -> None:
    base = code_fingerprint(compiled(BASE))
    changes = [
        BASE.replace("* 2", "* 3"),  # a constant
        BASE.replace('name="pay"', 'name="charge"'),  # a step name
        BASE.replace("total + 1", "total - 1"),  # inside a nested lambda
        BASE.replace('"a", "b", "c"', '"a", "b", "d"'),  # a frozenset constant
        BASE.replace("total", "amount"),  # a local name
        BASE.replace("def wf(ctx, order):", 'def wf(ctx, order):\n    """Doc."""'),
    ]
    for changed in changes:
        assert code_fingerprint(compiled(changed)) != base, changed


def test_it_does_not_depend_on_the_string_hash_seed() -> None:
    # Set constants (frozensets) iterate in an order that depends on PYTHONHASHSEED.
    probe = (
        "import sys, textwrap, types\n"
        "from durakit.core.versions import code_fingerprint\n"
        f"src = {BASE!r}\n"
        "ns = {}\n"
        "exec(compile(textwrap.dedent(src), 'app.py', 'exec'), ns)\n"
        "print(code_fingerprint(ns['wf'].__code__).hex())\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", probe],
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("0", "1", "2", "3")
    }
    assert digests == {code_fingerprint(compiled(BASE)).hex()}


def _row(wid: str, status: StatusType, version: str, app: str | None = "shop") -> WorkflowRecord:
    return WorkflowRecord(
        workflow_id=wid,
        name="n",
        status=status,
        input=None,
        executor_id="x",
        application_version=version,
        application_id=app,
        created_at=0,
        updated_at=0,
    )


def test_a_version_move_picks_active_work_of_the_selection_only() -> None:
    by_version = VersionMove(to_version="v2", now_ms=1, application_id="shop", from_version="v1")
    assert by_version.picks(_row("a", StatusType.PENDING, "v1"))
    assert by_version.picks(_row("b", StatusType.ENQUEUED, "v1"))
    assert not by_version.picks(_row("c", StatusType.SUCCESS, "v1"))  # finished: never
    assert not by_version.picks(_row("d", StatusType.PENDING, "v0"))
    assert not by_version.picks(_row("e", StatusType.PENDING, "v1", app="billing"))
    by_id = VersionMove(to_version="v2", now_ms=1, workflow_ids=("a",))
    assert by_id.picks(_row("a", StatusType.PENDING, "v0", app=None))
    assert not by_id.picks(_row("b", StatusType.PENDING, "v0"))


def test_a_version_move_needs_a_selection() -> None:
    with pytest.raises(ValueError, match="workflow_ids or from_version"):
        VersionMove(to_version="v2", now_ms=1)
