"""Peak resident memory of a process tree, sampled in a thread (shared by the benchmarks)."""

from __future__ import annotations

import threading
import time

import psutil


class PeakRSS:
    """Peak total RSS of a process and all its children, sampled every ``interval`` s.

    ``pid`` defaults to this process. Use as a context manager; ``peak`` is in bytes.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.02):
        self.pid, self.interval = pid, interval
        self.peak, self._stop = 0, threading.Event()

    def _tree_rss(self) -> int:
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = self._tree_rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
