"""One way to get Dask workers: :func:`get_client`, for every stage and every machine.

========  ==================================================================================
kind      workers
========  ==================================================================================
local     ``distributed.LocalCluster`` of processes on this machine
cuda      ``dask_cuda.LocalCUDACluster``: one worker per visible GPU, optional RMM pool that
          torch and CuPy allocate from (``sarise[gpu]``)
slurm     ``dask_jobqueue.SLURMCluster``: batch jobs that start workers and connect back here
mpi       ``dask_mpi``: the ranks of an ``mpirun``/``srun`` launch; rank 0 runs the scheduler,
          rank 1 returns from :func:`get_client` and runs the command, ranks 2+ are workers
========  ==================================================================================

The stage code is the same for all kinds: it submits tasks to the client it is given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

from sarise.config import ClusterConfig
from sarise.errors import SariseError

__all__ = ["KINDS", "get_client", "keep_malloc_dynamic", "worker_threads"]

logger = logging.getLogger(__name__)

KINDS = ("local", "cuda", "slurm", "mpi")


@contextlib.contextmanager
def get_client(config: ClusterConfig | None = None, **overrides) -> Iterator:
    """A ``distributed.Client`` on a new cluster, closed (with its cluster) on exit.

    Parameters
    ----------
    config : ClusterConfig, optional
        The ``cluster`` section of the run config (default: local processes).
    **overrides
        Fields of :class:`~sarise.config.ClusterConfig` to replace (``kind``, ``workers``...).

    Examples
    --------
    >>> with get_client(kind="local", workers=1) as client:  # doctest: +SKIP
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    cfg = (config or ClusterConfig()).model_copy(update=overrides)
    if cfg.kind not in KINDS:
        raise SariseError(f"unknown cluster kind {cfg.kind!r}; choose {', '.join(KINDS)}")
    from distributed import Client

    keep_malloc_dynamic()
    quiet_dask()

    if cfg.kind == "mpi":
        from dask_mpi import send_close_signal

        client = _mpi_client(cfg)
        try:
            yield client
        finally:
            client.close()
            send_close_signal()  # the scheduler and worker ranks stop and exit
        return
    cluster = {"local": _local, "cuda": _cuda, "slurm": _slurm}[cfg.kind](cfg)
    try:
        client = Client(cluster)
        try:
            if cfg.kind == "slurm":
                client.wait_for_workers(1, timeout=cfg.timeout)
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


def keep_malloc_dynamic() -> None:
    """Spawn workers without Dask's ``MALLOC_TRIM_THRESHOLD_=65536``.

    Any fixed trim threshold also fixes glibc's mmap threshold, so every large tensor is
    mapped and unmapped afresh: torch on CPU ran at half speed in Dask workers (the shipped
    model, 128 px, one thread: 147 images/s with it, 260 without). glibc's own dynamic
    thresholds still return freed memory to the system. This holds for the workers this
    process's nannies spawn (local, cuda); SLURM jobs' nannies read their own config.
    """
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    if "MALLOC_TRIM_THRESHOLD_" in env:
        env.pop("MALLOC_TRIM_THRESHOLD_")
        dask.config.set({"distributed.nanny.pre-spawn-environ": env})


#: Loggers of the Dask stack: their INFO lines (workers starting, connections, closing)
#: are not the user's business, so they log at WARNING unless sarise logs at DEBUG.
DASK_LOGGERS = ("distributed", "dask_jobqueue", "dask_mpi", "dask_cuda", "tornado", "bokeh")


def quiet_dask() -> None:
    """Keep Dask's own INFO chatter out of the log unless sarise logs at DEBUG: here and in
    the worker processes this process spawns (through Dask's logging config)."""
    import dask

    debug = logging.getLogger("sarise").getEffectiveLevel() <= logging.DEBUG
    level = logging.DEBUG if debug else logging.WARNING
    for name in DASK_LOGGERS:
        logging.getLogger(name).setLevel(level)
    name = logging.getLevelName(level).lower()
    dask.config.set({"logging": {**dict(dask.config.get("logging", {}) or {}),
                                 "distributed": name}})  # fmt: skip
    os.environ["DASK_LOGGING__DISTRIBUTED"] = name


def _http(cfg: ClusterConfig) -> dict:
    """Scheduler options: the dashboard only where asked, at its address; without it the
    scheduler's HTTP endpoints bind a free port instead of Dask's default 8787."""
    if cfg.dashboard:
        return {"dashboard": True, "dashboard_address": cfg.dashboard}
    return {"dashboard": False, "dashboard_address": ":0"}


def worker_threads(client) -> dict[str, int]:
    """Cores each worker may give torch: its host's cores shared by that host's workers."""
    cores = client.run(lambda: len(os.sched_getaffinity(0)))
    info = client.scheduler_info(n_workers=-1)["workers"]
    per_host: dict[str, int] = {}
    for addr in cores:
        host = info[addr]["host"]
        per_host[host] = per_host.get(host, 0) + 1
    return {a: max(1, cores[a] // per_host[info[a]["host"]]) for a in cores}


def _local(cfg: ClusterConfig):
    from distributed import LocalCluster

    n = cfg.workers or len(os.sched_getaffinity(0))
    logger.info("local Dask cluster: %d worker processes x %d threads", n, cfg.threads_per_worker)
    return LocalCluster(n_workers=n, threads_per_worker=cfg.threads_per_worker, processes=True,
                        dashboard_address=cfg.dashboard, scheduler_kwargs=_http(cfg))  # fmt: skip


def _cuda(cfg: ClusterConfig):
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        raise SariseError(
            "cluster kind 'cuda' needs dask-cuda: pip install 'sarise[gpu]'"
        ) from None
    kwargs = {"threads_per_worker": cfg.threads_per_worker, "dashboard_address": cfg.dashboard,
              "scheduler_kwargs": _http(cfg)}  # fmt: skip
    if cfg.workers:
        kwargs["n_workers"] = cfg.workers
    if cfg.rmm_pool_size:
        # torch and CuPy then allocate from the same pool as Dask (rmm_allocator_external_lib_list)
        kwargs.update(rmm_pool_size=cfg.rmm_pool_size, rmm_allocator_external_lib_list=["torch", "cupy"])  # fmt: skip
    logger.info("Dask-CUDA cluster: %s", kwargs)
    return LocalCUDACluster(**kwargs)


def _slurm(cfg: ClusterConfig):
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise SariseError(
            "cluster kind 'slurm' needs dask-jobqueue: pip install dask-jobqueue"
        ) from None
    workers = cfg.workers or cfg.jobs
    if workers % cfg.jobs:
        raise SariseError(
            f"cluster.workers ({workers}) must be a multiple of cluster.jobs ({cfg.jobs})"
        )
    logs = os.environ.get("SARISE_SLURM_LOGS") or os.path.join(
        tempfile.gettempdir(), "sarise-slurm"
    )
    cluster = SLURMCluster(
        cores=cfg.cores,
        processes=workers // cfg.jobs,
        memory=cfg.memory,
        walltime=cfg.walltime,
        queue=cfg.queue,
        account=cfg.account,
        job_extra_directives=list(cfg.job_extra),
        python=sys.executable,
        log_directory=logs,
        local_directory=tempfile.gettempdir(),
        scheduler_options=_http(cfg),
        job_name="sarise-dask",
    )
    logger.info("SLURM Dask cluster: %d jobs x %d workers\n%s", cfg.jobs, workers // cfg.jobs,
                cluster.job_script())  # fmt: skip
    cluster.scale(jobs=cfg.jobs)
    return cluster


def _mpi_client(cfg: ClusterConfig):
    try:
        import dask_mpi
        from mpi4py import MPI
    except ImportError as exc:
        raise SariseError(f"cluster kind 'mpi' needs dask-mpi and mpi4py ({exc})") from None
    from distributed import Client

    if MPI.COMM_WORLD.Get_size() < 3:
        raise SariseError("cluster kind 'mpi' needs at least 3 ranks (scheduler, client, "
                          "worker): mpirun -np 3 ...")  # fmt: skip
    # ranks 0 and 2+ run the scheduler and the workers until rank 1 is done, then exit
    is_client = dask_mpi.initialize(nthreads=cfg.threads_per_worker,
                                    dashboard=bool(cfg.dashboard),
                                    dashboard_address=cfg.dashboard or ":0",
                                    local_directory=tempfile.gettempdir(), exit=False)  # fmt: skip
    if not is_client:
        sys.exit(0)
    client = Client()
    n = MPI.COMM_WORLD.Get_size() - 2
    client.wait_for_workers(n, timeout=cfg.timeout)
    logger.info("dask-mpi: %d workers", n)
    return client
