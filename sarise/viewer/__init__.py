"""The browser explorer (``sarise view``) and the static report (``sarise report``)."""

from sarise.viewer.server import make_server

__all__ = ["make_server"]
