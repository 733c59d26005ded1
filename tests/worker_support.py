"""Shared by the child processes of the process tests (tests/*_worker.py); not a test module.

The workers run as ``python -m tests.<name>_worker`` from the repository root (see
:func:`tests.proc_support.worker_command`), so they can import this module.
"""

from __future__ import annotations

import os
from pathlib import Path

import durakit as dk


def append_line(path: Path, line: str) -> None:
    """One ``write`` of a whole line on an O_APPEND descriptor, fsync'd: lines never tear
    or interleave, and a line written before a SIGKILL is in the file."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def worker_app(
    *, app_name: str, db: str, schema: str, version: str, executor_id: str | None = None
) -> dk.Durakit:
    """An unlaunched engine on the database ``db`` (schema ``schema``)."""
    return dk.Durakit(
        dk.Config(
            app_name=app_name,
            database_url=db,
            database_schema=schema,
            application_version=version,
            executor_id=executor_id,
        )
    )
