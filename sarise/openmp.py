"""How torch's CPU threads wait for work: set before torch is imported.

torch computes on the CPU in a pool of OpenMP threads (GNU libgomp in the PyPI wheels).
By default a thread that has finished its share of an operation spins for a few
milliseconds before it sleeps. Training on images generated on the fly runs data-loader
processes beside that pool; on a small CPU the spinning threads take the cores the
loaders need, and every operation then waits for its slowest thread.
``OMP_WAIT_POLICY=PASSIVE`` makes a waiting thread sleep at once, so the cores go to
whoever has work.

``sarise train`` (and the benchmarks that train) set it. On 2 AMD EPYC cores with one
loader process, ResNet-18 width 32 at 128 px in bf16 trains on the fly at 235-257
images/s instead of 194-207 (``python benchmarks/bench_train.py``, which runs the
float32 row of the path before ``precision: auto`` with libgomp's default). In-memory
training and extraction, where nothing else wants the cores, are unchanged within the
run-to-run spread.

libgomp reads the variable once, when it is loaded (with torch); a value the user set
is kept.
"""

from __future__ import annotations

import os

__all__ = ["wait_passively"]


def wait_passively() -> None:
    """Let torch's OpenMP threads sleep while they wait (``OMP_WAIT_POLICY=PASSIVE``),
    in this process and the processes it starts (data loaders, local ranks), unless the
    variable is set already. Call it before torch is imported: after, it reaches only the
    processes started from then on."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
