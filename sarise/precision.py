"""Which number format the network computes in: ``fp32`` or ``bf16``.

Training runs bf16 as autocast (float32 master weights); inference (evaluate, extract,
search) runs a BatchNorm-folded copy of the network in bfloat16
(:func:`sarise.features.inference_model`).
``precision: auto`` (train, evaluate, extract, search) means bfloat16 with
``channels_last`` where the hardware computes bfloat16 natively, float32 elsewhere:

- a CUDA GPU: ``bf16``;
- a CPU whose flags (``/proc/cpuinfo``) name ``avx512_bf16`` or ``amx_bf16`` (AMD Zen 4+,
  Intel Cooper Lake, Sapphire Rapids and later): ``bf16``, about 2x faster than float32
  there;
- any other CPU: ``fp32`` (bfloat16 is emulated there and several times slower).

``fp32`` and ``bf16`` force the format. The two give different bits, so the feature store
records the precision it was made with and refuses to mix them.

>>> resolve("fp32", "cuda"), resolve("bf16", "cpu")
('fp32', 'bf16')
"""

from __future__ import annotations

import functools
from typing import Literal

__all__ = ["PRECISIONS", "channels_last_safe", "native_bf16", "resolve"]

PRECISIONS = ("auto", "fp32", "bf16")
Precision = Literal["fp32", "bf16"]

_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def native_bf16() -> bool:
    """Whether this machine's CPU computes bfloat16 natively (its ``/proc/cpuinfo`` flags)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return any(flag in flags for flag in _BF16_FLAGS)
    except OSError:
        pass
    try:  # other systems: torch's own view of the vector unit
        import torch

        return "AMX" in torch.backends.cpu.get_cpu_capability()
    except Exception:
        return False


def resolve(precision: str, device_type: str) -> Precision:
    """``fp32`` or ``bf16`` for ``precision`` (``auto``, ``fp32``, ``bf16``) on a device type."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision  # type: ignore[return-value]
    if device_type == "cuda":
        return "bf16"
    return "bf16" if device_type == "cpu" and native_bf16() else "fp32"


def channels_last_safe(model, device_type: str) -> bool:
    """Whether ``model`` may run in ``channels_last`` on this device type.

    Always on a GPU; on a CPU only where every convolution has at least 8 output
    channels: oneDNN's NHWC kernels corrupt the heap below that on AVX2 CPUs (torch 2.13,
    a width-4 ResNet's backward), and such tiny models gain nothing from the layout.
    """
    if device_type != "cpu":
        return True
    import torch

    convs = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return not convs or min(convs) >= 8
