"""``Config``: how an engine is set up.

Invalid values raise InitializationError naming the field.
"""

from __future__ import annotations

import logging
import os

import attrs

from durakit.api.clock import Clock, SystemClock
from durakit.backends.protocol import SystemStore
from durakit.core.errors import InitializationError


@attrs.frozen(kw_only=True)
class Config:
    """Engine configuration (see the API contract for every field)."""

    app_name: str
    database_url: str | None = None
    store: SystemStore | None = None
    database_schema: str = "durakit"
    logger: logging.Logger | None = None
    admin_server: bool = False
    admin_host: str = "127.0.0.1"
    admin_port: int = 3001
    application_version: str | None = None
    executor_id: str | None = None
    clock: Clock = attrs.field(factory=SystemClock)
    max_concurrent_workflows: int | None = None

    def __attrs_post_init__(self) -> None:
        if not self.app_name.strip():
            raise InitializationError("Config.app_name must be a non-empty string")
        if not self.database_schema.isidentifier():
            raise InitializationError(
                f"Config.database_schema must be a plain identifier, got {self.database_schema!r}"
            )
        if not 0 < self.admin_port < 65536:
            raise InitializationError(f"Config.admin_port out of range: {self.admin_port}")
        if self.max_concurrent_workflows is not None and self.max_concurrent_workflows < 1:
            raise InitializationError(
                "Config.max_concurrent_workflows must be >= 1 or None, "
                f"got {self.max_concurrent_workflows}"
            )
        if not isinstance(self.clock, Clock):
            raise InitializationError("Config.clock must implement durakit.Clock (now, wait)")

    def resolved_executor_id(self) -> str:
        """Config value, else DURAKIT_EXECUTOR_ID, else "local"."""
        return self.executor_id or os.environ.get("DURAKIT_EXECUTOR_ID") or "local"

    def resolved_logger(self) -> logging.Logger:
        return self.logger or logging.getLogger("durakit")
