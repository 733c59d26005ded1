"""``BackgroundThread``: the engine's long-running helper threads (the scheduler, the
retention pass) start at ``launch()`` and stop at ``shutdown()`` the same way."""

from __future__ import annotations

import threading


class BackgroundThread:
    """A daemon thread running ``_run`` until :meth:`stop` sets ``_stop``."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to end and wait for it (up to ``timeout`` real seconds)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError
