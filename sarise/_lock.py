"""One writer per store: :func:`exclusive` holds a lock file while a stage writes.

An image store and a projection tree keep theirs inside (``<folder>/.sarise.lock``); a
feature store beside itself (``.features.zarr.lock``), since creating a Zarr group clears
its folder.

The lock is an ``flock`` on the file, so the kernel releases it when its holder exits,
however it exits (a killed run leaves no stale lock behind); the file also names the
holder (pid, host, command, start time) for the message a second writer gets. A second
``sarise ingest`` into the same store is refused at once rather than numbering its
Parquet parts over the first one's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from sarise.errors import SariseError

__all__ = ["LOCK_NAME", "exclusive"]

LOCK_NAME = ".sarise.lock"


@contextlib.contextmanager
def exclusive(folder: str | Path, what: str, *, beside: bool = False) -> Iterator[Path]:
    """Hold the write lock of ``folder`` for the ``with`` block.

    ``folder`` is created if missing, with the lock inside it, or (``beside``) the lock is
    ``.<name>.lock`` in its parent.

    Raises
    ------
    SariseError
        When another process holds it, naming that process.
    """
    folder = Path(folder)
    if beside:
        folder.parent.mkdir(parents=True, exist_ok=True)
        path = folder.parent / f".{folder.name}.lock"
    else:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SariseError(f"{folder} is being written by another {_holder(path)}; wait for "
                              f"it to finish (or stop it) before writing {what} there") from None  # fmt: skip
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
                  "command": " ".join(sys.argv[:4]),
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the flock


def _holder(path: Path) -> str:
    try:
        h = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        h = {}
    if not h:
        return "process"
    return (f"process (pid {h.get('pid')} on {h.get('host')}, {h.get('what')}, "
            f"since {h.get('since')})")  # fmt: skip
