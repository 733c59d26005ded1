"""The admin HTTP server and its web dashboard (``Config(admin_server=True)``,
``durakit dashboard``): a client of the management API, served by uvicorn."""

from durakit.admin.app import build_app
from durakit.admin.server import AdminServer

__all__ = ["AdminServer", "build_app"]
