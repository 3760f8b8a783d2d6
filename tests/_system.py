"""The real system parts some tests need (OpenMPI, a SLURM cluster): skip with the reason
where one is absent, fail under CI (``CI=true``), where `.ci/run` brings them up."""

import os
import shutil
import subprocess
import time

import pytest

#: OpenMPI as root, more ranks than cores, TCP between ranks on one machine.
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_btl": "self,tcp", "OMPI_MCA_rmaps_base_oversubscribe": "1"}  # fmt: skip


def need_mpirun() -> None:
    if shutil.which("mpirun") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mpirun is missing under CI: `make system` installs OpenMPI")
        pytest.skip("OpenMPI not installed (`make system`)")


def _slurm_states() -> str | None:
    """The node states ``sinfo`` reports, or None where no controller answers."""
    try:
        up = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return up.stdout if up.returncode == 0 else None


def need_slurm(wait: float = 120.0) -> None:
    """A SLURM cluster with an idle node. A node still busy with the previous test's job
    (``completing`` while its processes are cleaned up, ``mixed``, ``allocated``: slow on a
    loaded machine) is waited for, up to ``wait`` seconds; no controller fails at once."""
    deadline = time.monotonic() + wait
    states = _slurm_states()
    while states is not None and "idle" not in states and time.monotonic() < deadline:
        time.sleep(1.0)
        states = _slurm_states()
    if states is None or "idle" not in states:
        why = "no SLURM cluster" if states is None else f"no idle SLURM node ({states.strip()})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} under CI: `make slurm` brings one up")
        pytest.skip(f"{why} (`make slurm` brings up a local one)")
