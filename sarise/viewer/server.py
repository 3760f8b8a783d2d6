"""``sarise view``: the explorer as a Bokeh server, with images served by id only."""

from __future__ import annotations

import logging
import re
from functools import partial
from pathlib import Path

from tornado.web import HTTPError, RequestHandler

from sarise.viewer.data import RunData

__all__ = ["make_server"]

logger = logging.getLogger(__name__)


class ThumbnailHandler(RequestHandler):
    """``/thumb/<image id>.png`` (the first channel) and ``/thumb/<image id>/<channel>.png``:
    integers, never a path."""

    def initialize(self, data: RunData):
        self.data = data

    def get(self, image_id: str, channel: str | None = None):
        png = self.data.thumbnail_png(int(image_id), int(channel or 0))
        if png is None:
            raise HTTPError(404)
        self.set_header("Content-Type", "image/png")
        self.set_header("Cache-Control", "max-age=86400")
        self.write(png)


class ImageHandler(RequestHandler):
    """``/image/<image id>/<channel>.png``: a stored image at full stored resolution."""

    def initialize(self, data: RunData):
        self.data = data

    def get(self, image_id: str, channel: str):
        png = self.data.image_png(int(image_id), int(channel))
        if png is None:
            raise HTTPError(404)
        self.set_header("Content-Type", "image/png")
        self.set_header("Cache-Control", "max-age=86400")
        self.write(png)


class ExportHandler(RequestHandler):
    """``/export/<name>``: a file the explorer wrote into ``<run>/exports`` (plain names only)."""

    def initialize(self, data: RunData):
        self.data = data

    def get(self, name: str):
        if not re.fullmatch(r"[A-Za-z0-9_.-]+\.(csv|parquet)", name) or name.startswith("."):
            raise HTTPError(404)
        path = self.data.run / "exports" / name
        if not path.is_file():
            raise HTTPError(404)
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.set_header(
            "Content-Type", "text/csv" if name.endswith(".csv") else "application/octet-stream"
        )
        self.write(path.read_bytes())


def make_server(run: str | Path, *, host: str = "127.0.0.1", port: int = 5006, config=None,
                datashade_min: int | None = None):  # fmt: skip
    """A started-on-demand Bokeh ``Server`` for a run (call ``.start()`` and run its loop)."""
    from bokeh.application import Application
    from bokeh.application.handlers.function import FunctionHandler
    from bokeh.server.server import Server

    from sarise.config import load_config
    from sarise.viewer.app import DATASHADE_MIN, make_document

    cfg = config or load_config(None)
    data = RunData(run, cfg.project, cfg.search)
    data.warm_up()
    from bokeh.document import Document

    threshold = DATASHADE_MIN if datashade_min is None else datashade_min
    make_document(Document(), data, threshold)  # the first visitor then finds caches filled
    app = Application(FunctionHandler(partial(make_document, data=data, datashade_min=threshold)))
    extra = [(r"/thumb/([0-9]{1,20})\.png", ThumbnailHandler, {"data": data}),
             (r"/thumb/([0-9]{1,20})/([0-9]{1,2})\.png", ThumbnailHandler, {"data": data}),
             (r"/image/([0-9]{1,20})/([0-9]{1,2})\.png", ImageHandler, {"data": data}),
             (r"/export/([^/]+)", ExportHandler, {"data": data})]  # fmt: skip
    origins = [f"{host}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"]
    server = Server({"/": app}, address=host, port=port, allow_websocket_origin=origins,
                    extra_patterns=extra, num_procs=1)  # fmt: skip
    return server
