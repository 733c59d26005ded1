"""The fence rule: may the execution holding an owner token write to a workflow now?

Every store asks this one function (the memory store on its row, SQLite inside its
write transaction, Postgres on the cold path after its one-statement write inserted
nothing), so the three cannot disagree about why a write was refused.

The rule: an execution writes only while the row is PENDING and carries its owner
token. One exception, asked for with ``while_cancelled``: the outcome of a step that
was already running when the workflow was cancelled (cancellation stops a workflow at
its *next* step; a running step is not interrupted, and its outcome is kept so that a
resume does not run it again). A cancel leaves the owner token alone, so a row that is
CANCELLED and still carries the writer's token was cancelled during this very
execution; a resume or a recovery writes a new token and fences the old writer out.
"""

from __future__ import annotations

from durakit.core.records import WriteResult
from durakit.core.status import StatusType


def fence_verdict(
    status: StatusType | None,
    owner: str | None,
    fence_owner: str,
    *,
    while_cancelled: bool = False,
) -> WriteResult:
    """What a fenced write by ``fence_owner`` does to a row with ``status`` and ``owner``
    (``status`` None: no such row).

    ``OK`` or ``RECORDED_WHILE_CANCELLED`` (see :attr:`WriteResult.written`): the write
    may proceed; anything else: why it may not. A step-ID conflict (DUPLICATE) is the
    store's own finding, after this verdict allowed the write.
    """
    if status is None:
        return WriteResult.NOT_PENDING
    if status is StatusType.CANCELLED:
        if while_cancelled and owner == fence_owner:
            return WriteResult.RECORDED_WHILE_CANCELLED
        return WriteResult.CANCELLED
    if status is not StatusType.PENDING:
        return WriteResult.NOT_PENDING
    if owner != fence_owner:
        return WriteResult.NOT_OWNER
    return WriteResult.OK
