"""``Client``: management and messaging for code outside the application process."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from durakit.api.clock import Clock, SystemClock
from durakit.api.handle import EngineHandle
from durakit.api.management import Management
from durakit.api.registry import Registry
from durakit.api.serialization import Serializer
from durakit.api.waiting import WakeHub
from durakit.backends.protocol import PushNotifications, SystemStore


class Client(Management):
    """Reads, cancels and messages workflows in a durakit database without running any.

    ``Client(database_url="postgresql://...")`` (or ``store=`` any SystemStore). Payloads
    are decoded as plain JSON unless a call takes a ``type``/``output_type``. Resuming,
    forking and enqueueing need an executor to run the work: use the engine for those.
    """

    def __init__(
        self,
        database_url: str | None = None,
        database_schema: str = "durakit",
        *,
        store: SystemStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        if store is None:
            from durakit.backends.urls import open_store  # noqa: PLC0415 - drivers on demand

            store = open_store(database_url, database_schema)
            self._owns_store = True
        else:
            self._owns_store = False
        self._store = store
        try:
            self._store.migrate()
        except BaseException:
            # A client that failed to open must not leave the store's pool and threads.
            self.close()
            raise
        self.registry = Registry()
        self.serializer = Serializer()
        self.clock = clock or SystemClock()
        self.hub = WakeHub()
        self.executor_id = "client"
        self.application_version = ""
        if isinstance(store, PushNotifications):
            store.subscribe(self.hub.notify)
            self.hub.pushed = True

    @property
    def store(self) -> SystemStore:
        return self._store

    def handle_for(self, workflow_id: str, output_type: Any) -> EngineHandle[Any]:
        return EngineHandle(self, workflow_id, output_type, None)

    def close(self) -> None:
        """Close the store if this client opened it."""
        if self._owns_store:
            self._store.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
