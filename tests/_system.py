"""The real system parts some tests need (OpenMPI, a SLURM cluster): skip with the reason
where one is absent, fail under CI (``CI=true``), where `.ci/run` brings them up."""

import os
import shutil
import subprocess

import pytest

#: OpenMPI as root, more ranks than cores, TCP between ranks on one machine.
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_btl": "self,tcp", "OMPI_MCA_rmaps_base_oversubscribe": "1"}  # fmt: skip


def need_mpirun() -> None:
    if shutil.which("mpirun") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mpirun is missing under CI: `make system` installs OpenMPI")
        pytest.skip("OpenMPI not installed (`make system`)")


def need_slurm() -> None:
    try:
        up = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
        ok = up.returncode == 0 and "idle" in up.stdout
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail("no SLURM cluster under CI: `make slurm` brings one up")
        pytest.skip("no SLURM cluster (`make slurm` brings up a local one)")
