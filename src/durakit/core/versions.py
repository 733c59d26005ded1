"""The default application version: a hash of what the workflows' code *does*.

The version tells which engines may recover a workflow (code that replays the same
steps). Hashing the source text made a comment or a reformat a new version, stranding
PENDING work of the "old" one after a restart. This hashes the compiled code instead:
bytecode, names, constants, and the same for every nested function, class body,
lambda and comprehension; never line numbers, positions or file names, so comments,
blank lines and formatting leave it unchanged, while any change of behaviour (an
operation, a name, a constant, a docstring) changes it. Bytecode differs between
Python versions, so upgrading Python is a new version too.
"""

from __future__ import annotations

import hashlib
import types


def _const_bytes(value: object) -> bytes:
    if isinstance(value, types.CodeType):
        return code_fingerprint(value)
    if isinstance(value, frozenset):
        # A frozenset's iteration order depends on the string hash seed: sort it.
        return b"{" + b",".join(sorted(_const_bytes(v) for v in value)) + b"}"
    if isinstance(value, tuple):
        return b"(" + b",".join(_const_bytes(v) for v in value) + b")"
    return f"{type(value).__name__}:{value!r}".encode()


def code_fingerprint(code: types.CodeType) -> bytes:
    """A digest of ``code`` that ignores where it came from (file, lines, columns)."""
    parts = [
        code.co_code,
        repr((code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount)).encode(),
        repr((code.co_flags, code.co_name)).encode(),
        repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)).encode(),
        b"(" + b",".join(_const_bytes(c) for c in code.co_consts) + b")",
    ]
    return hashlib.sha256(b"\0".join(parts)).digest()
