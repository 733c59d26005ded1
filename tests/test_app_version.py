"""The default application version survives comments and reformatting (a restart after
such an edit still recovers the PENDING work), and changes with behaviour."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import durakit as dk

APP = """
import durakit as dk

def register(app: dk.Durakit) -> None:
    @app.workflow(name="checkout")
    def checkout(ctx: dk.Context, qty: int) -> int:
        {body}
"""


def version_of(tmp_path: Path, module: str, body: str) -> str:
    path = tmp_path / f"{module}.py"
    path.write_text(textwrap.dedent(APP).replace("{body}", body))
    spec = importlib.util.spec_from_file_location(module, path)
    assert spec is not None
    assert spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    app = dk.Durakit(dk.Config(app_name="shop", store=dk.MemoryStore()))
    loaded.register(app)
    with app:
        return app.application_version


def test_a_comment_or_a_reformat_keeps_the_default_version(tmp_path: Path) -> None:
    plain = version_of(tmp_path, "v_plain", "return ctx.run_step(lambda: qty * 2, name='x')")
    commented = version_of(
        tmp_path,
        "v_commented",
        "# doubled, as the shop wants\n"
        "        return ctx.run_step(  # one step\n"
        "            lambda: qty * 2,\n"
        "            name='x',\n"
        "        )",
    )
    assert plain == commented


def test_a_change_of_behaviour_changes_the_default_version(tmp_path: Path) -> None:
    plain = version_of(tmp_path, "v_two", "return ctx.run_step(lambda: qty * 2, name='x')")
    changed = version_of(tmp_path, "v_three", "return ctx.run_step(lambda: qty * 3, name='x')")
    assert plain != changed
