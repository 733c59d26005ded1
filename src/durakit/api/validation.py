"""Checks on the identifiers users pass (workflow IDs, topics, event keys, names).

Postgres text cannot hold NUL characters while SQLite and memory can; rejecting them
here gives every store the same behaviour and the user an error that names the field.
"""

from __future__ import annotations


def check_text(**fields: str | None) -> None:
    """Raise ValueError naming the first field that is not a NUL-free string."""
    for name, value in fields.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, got {type(value).__qualname__}")
        if "\x00" in value:
            raise ValueError(f"{name} must not contain NUL characters: {value!r}")
