"""Stores: the ``SystemStore`` protocol and its implementations (memory, SQLite, Postgres)."""

from durakit.backends.memory import MemoryStore
from durakit.backends.protocol import (
    MessageStore,
    PushNotifications,
    StepStore,
    SystemStore,
    WorkflowStore,
)

__all__ = [
    "MemoryStore",
    "MessageStore",
    "PushNotifications",
    "StepStore",
    "SystemStore",
    "WorkflowStore",
]
