"""``python -m durakit``: the same as the ``durakit`` command."""

from durakit.cli import main

main()
