"""A griffe extension for the docs site (mkdocs.yml): Sphinx roles as Markdown code.

durakit's docstrings name things the Sphinx way (:class:`~durakit.testing.FakeClock`,
:meth:`advance`), which IDEs and ``help()`` read well; mkdocstrings renders docstrings as
Markdown and would show the role literally. This rewrites each role to a code span of
the name (its last part when the target starts with ``~``) before rendering.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def markdown_code(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class SphinxRoles(griffe.Extension):
    """Rewrites the Sphinx roles of every docstring it sees."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(markdown_code, obj.docstring.value)
