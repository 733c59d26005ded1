"""Draw the workflow status machine as a Mermaid ``stateDiagram-v2``, from the table.

The diagram in ``docs/concepts.md`` is this function's output (a test compares them), so
the picture cannot drift from :data:`~durakit.core.status.TRANSITIONS`.

What is drawn:

- ``[*] --> PENDING : start`` and ``[*] --> ENQUEUED : enqueue``: how rows are created
  (creation is not an event of the table, so these two arrows are fixed here).
- One arrow per (source, target) pair whose outcome is a status, labelled with the
  events that take it, in :class:`~durakit.core.status.WorkflowEvent` order. Explicit
  self-transitions such as ``PENDING --> PENDING : RECOVER`` are drawn: they are real
  writes (a new owner, one more attempt) even though the status stays the same.
- Absorbed events (``ABSORB``: accepted, nothing changes, e.g. cancelling a workflow that
  already succeeded) are *omitted*: drawn as self-loops they would hide the arrows that
  matter, and "every event not drawn on a terminal status is a harmless no-op" is said
  once in the docs instead.
- ``SUCCESS --> [*]`` and ``ERROR --> [*]`` for the terminal statuses.

Run ``python -m durakit.core.diagram`` to print it.
"""

from __future__ import annotations

from durakit.core.status import TERMINAL, TRANSITIONS, StatusType, WorkflowEvent

_INITIAL: tuple[tuple[StatusType, str], ...] = (
    (StatusType.PENDING, "start"),
    (StatusType.ENQUEUED, "enqueue"),
)


def mermaid_state_diagram() -> str:
    """The status machine as Mermaid source, one statement per line, ending in a newline."""
    statuses = list(StatusType)
    events = list(WorkflowEvent)
    edges: dict[tuple[StatusType, StatusType], list[WorkflowEvent]] = {}
    for (source, event), outcome in TRANSITIONS.items():
        if isinstance(outcome, StatusType):
            edges.setdefault((source, outcome), []).append(event)

    lines = ["stateDiagram-v2"]
    lines += [f"    [*] --> {status.name} : {label}" for status, label in _INITIAL]
    for source, target in sorted(
        edges, key=lambda pair: (statuses.index(pair[0]), statuses.index(pair[1]))
    ):
        labels = ", ".join(e.name for e in sorted(edges[source, target], key=events.index))
        lines.append(f"    {source.name} --> {target.name} : {labels}")
    lines += [f"    {status.name} --> [*]" for status in statuses if status in TERMINAL]
    return "\n".join(lines) + "\n"


def main() -> None:
    """``python -m durakit.core.diagram``: print the diagram (the only I/O in the core)."""
    print(mermaid_state_diagram(), end="")


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in the tests
    main()
