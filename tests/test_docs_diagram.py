"""The state diagram in docs/concepts.md is the one generated from the transition table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from durakit.core import diagram
from durakit.core.diagram import mermaid_state_diagram
from durakit.core.status import TERMINAL, TRANSITIONS, StatusType

CONCEPTS = Path(__file__).resolve().parent.parent / "docs" / "concepts.md"
START, END = "<!-- diagram:start -->", "<!-- diagram:end -->"
EDGE = re.compile(r"^    (\S+) --> (\S+)(?: : (.+))?$")


def documented_diagram() -> str:
    text = CONCEPTS.read_text(encoding="utf-8")
    assert text.count(START) == 1, f"{CONCEPTS.name} needs exactly one {START}"
    assert text.count(END) == 1, f"{CONCEPTS.name} needs exactly one {END}"
    block = text.split(START, 1)[1].split(END, 1)[0]
    fence = re.fullmatch(r"\n```mermaid\n(.*)```\n", block, flags=re.DOTALL)
    assert fence is not None, "the diagram block must be one ```mermaid fence, nothing else"
    return fence.group(1)


def test_the_documented_diagram_is_the_generated_one() -> None:
    assert documented_diagram() == mermaid_state_diagram(), (
        "docs/concepts.md is out of date: replace the block between the diagram markers "
        "with the output of `python -m durakit.core.diagram`"
    )


def edges(source: str) -> dict[tuple[str, str], set[str]]:
    """(from, to) -> labels, parsed back out of the Mermaid text."""
    lines = source.splitlines()
    assert lines[0] == "stateDiagram-v2"
    found: dict[tuple[str, str], set[str]] = {}
    for line in lines[1:]:
        match = EDGE.match(line)
        assert match is not None, f"unexpected line {line!r}"
        labels = set(match.group(3).split(", ")) if match.group(3) else set()
        assert (match.group(1), match.group(2)) not in found, f"duplicate arrow {line!r}"
        found[match.group(1), match.group(2)] = labels
    return found


def test_the_diagram_draws_exactly_the_status_changes_of_the_table() -> None:
    drawn = edges(mermaid_state_diagram())
    expected: dict[tuple[str, str], set[str]] = {
        ("[*]", "PENDING"): {"start"},
        ("[*]", "ENQUEUED"): {"enqueue"},
    }
    for (status, event), outcome in TRANSITIONS.items():
        if isinstance(outcome, StatusType):  # absorbed events are not drawn
            expected.setdefault((status.name, outcome.name), set()).add(event.name)
    for status in TERMINAL:
        expected[status.name, "[*]"] = set()
    assert drawn == expected


def test_the_diagram_does_not_depend_on_table_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # Same table, same text: reordering the dict (an edit that moves a row) must not
    # make the doc test fail.
    before = mermaid_state_diagram()
    monkeypatch.setattr(diagram, "TRANSITIONS", dict(reversed(list(TRANSITIONS.items()))))
    assert mermaid_state_diagram() == before
    assert before.endswith("]\n")  # one trailing newline, no blank line


def test_main_prints_the_diagram(capsys: pytest.CaptureFixture[str]) -> None:
    diagram.main()
    assert capsys.readouterr().out == mermaid_state_diagram()


def test_module_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "durakit.core.diagram"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout == mermaid_state_diagram()
