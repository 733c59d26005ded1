"""The documentation's examples run and print what the documentation says.

* README.md's first ``python`` block is examples/readme_example.py, word for word, and
  that file runs (twice: the second run returns the recorded receipt).
* Every ``python`` block of docs/getting-started.md is a complete program; run alone in
  an empty directory, it prints exactly the ``text`` block that follows it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "readme_example.py"
GUIDE = ROOT / "docs" / "getting-started.md"
EXPECTED = (
    "Receipt(order_id='42', reservation_id='res_espresso-machine', "
    "charge_id='ch_42_498.00', total=Decimal('498.00'))"
)
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", flags=re.DOTALL | re.MULTILINE)


def _blocks(markdown: str) -> list[tuple[str, str]]:
    """Every fenced block as (language, text)."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(markdown)]


def _run(source: Path | str, cwd: Path) -> str:
    args = [sys.executable, str(source)] if isinstance(source, Path) else [sys.executable, "-"]
    done = subprocess.run(
        args,
        input=None if isinstance(source, Path) else source,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_readme_example_is_the_example_file() -> None:
    python = [text for lang, text in _blocks((ROOT / "README.md").read_text()) if lang == "python"]
    assert python, "README.md has no python block"
    assert python[0] == EXAMPLE.read_text()


def test_readme_example_runs_and_a_second_run_returns_the_recorded_receipt(
    tmp_path: Path,
) -> None:
    # The example uses the default store, ./durakit.db: run it in an empty directory.
    for _ in range(2):
        assert _run(EXAMPLE, tmp_path).strip() == EXPECTED
    assert (tmp_path / "durakit.db").exists()


def _guide_examples() -> list[object]:
    blocks = _blocks(GUIDE.read_text())
    examples: list[object] = []
    for i, (lang, text) in enumerate(blocks):
        if lang != "python":
            continue
        follows = blocks[i + 1] if i + 1 < len(blocks) else ("", "")
        assert follows[0] == "text", f"python block {len(examples) + 1} has no output block"
        name = re.search(r'app_name="([^"]+)"', text)
        examples.append(pytest.param(text, follows[1], id=name.group(1) if name else None))
    return examples


@pytest.mark.parametrize(("source", "output"), _guide_examples())
def test_getting_started_example_prints_its_documented_output(
    source: str, output: str, tmp_path: Path
) -> None:
    assert _run(source, tmp_path) == output


@pytest.mark.slow
def test_the_demo_says_what_happened(tmp_path: Path) -> None:
    """examples/demo.py (the README's "Try it") kills its worker; what it says is true."""
    out = _run(ROOT / "examples" / "demo.py", tmp_path)
    steps = dict(re.findall(r"^   \d\. (\w+) +(.+)$", out, flags=re.MULTILINE))
    assert list(steps) == ["reserve_stock", "charge_card", "ship_parcel", "send_email"], out
    for name in ("reserve_stock", "charge_card"):
        assert "replayed from its checkpoint" in steps[name], out
    assert "The 2 steps checkpointed before the kill did not run again." in out
    in_flight = steps["ship_parcel"].startswith("was running when worker #1 was killed")
    assert ("ship_parcel was running when the kill hit" in out) == in_flight, out
    assert "no step ran twice" not in out
    assert out.rstrip().endswith("Each step ran to completion exactly once.")
