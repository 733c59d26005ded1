"""Hiding the password in database URLs and libpq connection strings.

Its own module, on no other durakit module, so that both the URL dispatcher
(:mod:`.urls`) and the Postgres store can mask what they print without importing each
other.
"""

from __future__ import annotations

import re
from typing import Final

MASK: Final = "***"

# The user-info password of any URL in the text: ``scheme://user:PASSWORD@host``. The
# password runs to the last ``@`` of the authority (before any ``/ ? #``), so an
# unencoded ``@`` in it is hidden too.
_URL_PASSWORD: Final = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^:/?#@\s]*:)[^/?#\s]*(?=@)", re.IGNORECASE
)
# ``password=...`` as a key/value conninfo pair (quoted with backslash escapes, or bare)
# or as a URL query parameter.
_KEY_PASSWORD: Final = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^\s&'#]*)", re.IGNORECASE
)


def mask_secrets(text: str) -> str:
    """``text`` with every database password in it replaced by ``***``.

    Covers ``postgresql://user:pw@host/db`` (and any other ``scheme://user:pw@``),
    ``password=pw`` pairs of a libpq connection string (``'quoted values'`` too) and
    ``?password=pw`` query parameters, anywhere in the text: a whole URL, or an error
    message or log line that quotes one.
    """
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    return _KEY_PASSWORD.sub(lambda m: m["head"] + MASK, text)
