"""Training throughput: number formats and layouts, and images generated on the fly vs
images already in memory.

    python benchmarks/bench_train.py [--size 128] [--width 32] [--batch 128] [--steps 30]
                                     [--workers 1] [--accelerator auto] [--no-bf16]

The in-memory rows read pre-generated, pre-standardised tensors and train the same model
with the same Lightning module and batch in float32 NCHW (the baseline), float32
``channels_last`` and bfloat16 autocast + ``channels_last``: what the format and layout are
worth on this machine (bf16 is emulated, and slow, on CPUs without native bfloat16: the
row says so). The last row trains on the fly in the format ``precision: auto`` picks;
its ratio to the same format in memory says whether data generation limits training
(goal: >= 0.9). Warm-up steps (loader start, first kernels) are not timed.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from sarise.config import SymmetryConfig, TrainConfig
from sarise.models import NORMALIZATION, SymmetryClassifier
from sarise.models.data import GeneratedImages, SymmetryDataModule
from sarise.symmetry import GROUPS

WARMUP = 5


class _Timer(L.Callback):
    def __init__(self):
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.times.append(time.perf_counter())


def _run(loader, args, precision, accel, channels_last=True) -> tuple[float, float]:
    L.seed_everything(0, verbose=False)
    module = SymmetryClassifier(
        model={"arch": args.arch, "width": args.width, "in_chans": 1},
        classes=list(GROUPS),
        normalization=dict(NORMALIZATION),
        image_size=args.size,
        optim={"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.05, "schedule": "cosine",
               "warmup": 0.1, "label_smoothing": 0.0, "steps": args.steps + WARMUP,
               "channels_last": channels_last, "compile": False},
    )  # fmt: skip
    timer = _Timer()
    trainer = L.Trainer(accelerator=accel, devices=1, precision=precision,
                        max_steps=args.steps + WARMUP, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[timer])  # fmt: skip
    trainer.fit(module, loader)
    t = timer.times[WARMUP - 1 :]
    steps = [b - a for a, b in itertools.pairwise(t)]
    return args.batch * len(steps) / (t[-1] - t[0]), args.batch / statistics.median(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per row")
    parser.add_argument("--workers", type=int, default=1, help="data-loader processes")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--no-bf16", action="store_true", help="skip the bf16 in-memory row")
    args = parser.parse_args()
    accel = args.accelerator
    if accel == "auto":
        accel = "gpu" if torch.cuda.is_available() else "cpu"
    from sarise.precision import native_bf16, resolve

    auto = resolve("auto", "cuda" if accel == "gpu" else "cpu")
    precision = {"bf16": "bf16-mixed", "fp32": "32-true"}[auto]
    sym = SymmetryConfig(size=args.size, cell_px=(12.0, 40.0), motif_sources=("natural", "field"))
    steps_total = args.steps + WARMUP
    train = TrainConfig(steps=steps_total, steps_per_epoch=steps_total, batch_size=args.batch,
                        workers=args.workers, model={"arch": args.arch, "width": args.width})  # fmt: skip
    fly = SymmetryDataModule(sym, train).train_dataloader()

    t0 = time.perf_counter()
    data = GeneratedImages(sym)
    xs, ys = zip(*(data[i] for i in range(args.batch * steps_total)), strict=True)
    gen_rate = len(xs) / (time.perf_counter() - t0)
    memory = DataLoader(TensorDataset(torch.stack(xs), torch.tensor(ys)), batch_size=args.batch)

    rows = [("in memory, fp32 NCHW", *_run(memory, args, "32-true", accel, False)),
            ("in memory, fp32 channels_last", *_run(memory, args, "32-true", accel))]  # fmt: skip
    if not args.no_bf16:
        native = accel == "gpu" or native_bf16()
        name = "in memory, bf16 channels_last" + ("" if native else " (emulated: no native bf16)")
        rows.append((name, *_run(memory, args, "bf16-mixed", accel)))
    same = next(r for r in rows if ("bf16" in r[0]) == (auto == "bf16") and "NCHW" not in r[0])
    rows.append((f"on the fly, {auto} (workers={args.workers})",
                 *_run(fly, args, precision, accel)))  # fmt: skip
    device = torch.cuda.get_device_name() if accel == "gpu" else f"CPU x{torch.get_num_threads()}"
    bf16 = "native" if accel == "gpu" or native_bf16() else "not native"
    print(f"\n{args.arch} width {args.width}, {args.size} px, batch {args.batch}, {device} "
          f"(bf16 {bf16}; precision auto: {auto}); generator alone: {gen_rate:.0f} images/s "
          "on one process\n")  # fmt: skip
    print("| row | images/s | median step images/s | vs fp32 NCHW | on the fly vs in memory |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, rate, median in rows:
        fly_ratio = f"{rate / same[1]:.2f}" if name.startswith("on the fly") else ""
        print(f"| {name} | {rate:.1f} | {median:.1f} | {rate / rows[0][1]:.2f} | {fly_ratio} |")


if __name__ == "__main__":
    main()
