"""One way to get Dask workers: :func:`get_client`.

``local`` starts a ``distributed.LocalCluster`` of processes on this machine; the other
kinds of the design (``cuda``, ``slurm``, ``mpi``) come with feature extraction.
"""

from __future__ import annotations

import logging
import os

from sarise.errors import SariseError

__all__ = ["KINDS", "get_client"]

logger = logging.getLogger(__name__)

KINDS = ("local",)


def get_client(kind: str = "local", *, workers: int | None = None, threads_per_worker: int = 1):
    """A ``distributed.Client`` on a new cluster of ``kind``; close it when done.

    Parameters
    ----------
    kind : {'local'}
        ``local``: worker processes on this machine (no dashboard, no spill to $HOME).
    workers : int, optional
        Worker processes (default: the cores this process may use).
    threads_per_worker : int
    """
    if kind not in KINDS:
        raise SariseError(f"cluster kind {kind!r} is not available yet; choose {', '.join(KINDS)}")
    from distributed import Client, LocalCluster

    n = workers or len(os.sched_getaffinity(0))
    cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                           dashboard_address=None)  # fmt: skip
    logger.info("local Dask cluster: %d worker processes x %d threads", n, threads_per_worker)
    return Client(cluster)
