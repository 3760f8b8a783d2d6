"""The recipe's input size x network width sweep: accuracy for the CPU time it costs.

    python benchmarks/bench_sweep.py [--config config/models/wallpaper-resnet18-w32-v2.yaml]
                                     [--sizes 64 96 128] [--widths 32 48 64] [--steps 600]
                                     [--batch 128] [--val-per-group 32] [--out DIR]

Every point trains from scratch (``train.init`` is dropped) with ``sarise.train.train`` on
the recipe's own distribution: its motif sources and imaging effects, its cell range cut
at a third of the input size, the same steps, batch and schedule. It then classifies a
validation split generated at that size (the recipe's seed, ``val`` split, the same
distribution) with the float32 network. The table gives each point's parameters, training
time and images/s, the CPU-hours it took (wall time x cores), group and lattice-family
accuracy, and the group accuracy above chance (1/17) per CPU-hour: the sweep's pick is
the point that buys the most accuracy per CPU-hour, read with its absolute accuracy
(a point that is cheap but far below the others is no pick).

Points that finished keep their folder (``--out``), so a rerun only trains the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from sarise.openmp import wait_passively

wait_passively()  # as `sarise train`: before torch is imported

import numpy as np  # noqa: E402

from sarise.config import load_config  # noqa: E402
from sarise.evaluate import FAMILIES, _generated, predict  # noqa: E402
from sarise.models.export import export_model, load_model  # noqa: E402
from sarise.symmetry import GROUPS  # noqa: E402
from sarise.train import quiet_lightning, train  # noqa: E402


def point(base, size: int, width: int, steps: int, batch: int, val_per_group: int,
          out: Path) -> dict:  # fmt: skip
    """Train and score one point of the sweep (or read its result from an earlier run)."""
    done = out / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    lo, hi = base.symmetry.cell_px
    symmetry = base.symmetry.model_copy(
        update={"size": size, "cell_px": (lo, max(lo + 1, min(hi, size // 3)))}
    )
    model = base.train.model.model_copy(update={"width": width})
    cfg = base.train.model_copy(update={"model": model, "init": None, "steps": steps,
                                        "steps_per_epoch": steps, "batch_size": batch})  # fmt: skip
    config = base.model_copy(update={"symmetry": symmetry, "train": cfg})
    t0, c0 = time.perf_counter(), time.process_time()
    ckpt = train(config, out / "model", show_progress=False)
    seconds = time.perf_counter() - t0
    net, _ = load_model(export_model(ckpt, out / "model.safetensors"))
    images, labels = _generated(symmetry, val_per_group, split="val")
    logits, _ = predict(net, images, precision="fp32")
    pred = np.asarray(logits).argmax(1)
    family = np.array([FAMILIES[g] for g in GROUPS])
    result = {"size": size, "width": width, "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
              "steps": steps, "batch": batch, "train_s": seconds,
              "images_per_s": steps * batch / seconds,
              "cpu_hours": seconds * (os.cpu_count() or 1) / 3600,
              "process_cpu_s": time.process_time() - c0,
              "val_images": len(labels), "accuracy": float((pred == labels).mean()),
              "family_accuracy": float((family[pred] == family[labels]).mean())}  # fmt: skip
    done.write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="config/models/wallpaper-resnet18-w32-v2.yaml")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 96, 128])
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 48, 64])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--val-per-group", type=int, default=32)
    ap.add_argument("--out", type=Path, default=None, help="keep each point's run here")
    args = ap.parse_args(argv)
    quiet_lightning()
    base = load_config(args.config)
    base = base.model_copy(update={"train": base.train.model_copy(update={"workers": 1})})
    out = args.out or Path(tempfile.mkdtemp(prefix="sweep-"))
    rows = []
    for size in args.sizes:
        for width in args.widths:
            r = point(base, size, width, args.steps, args.batch, args.val_per_group,
                      out / f"s{size}-w{width}")  # fmt: skip
            rows.append(r)
            print(f"  {size} px, width {width}: accuracy {r['accuracy']:.3f} in {r['train_s']:.0f} s",
                  flush=True)  # fmt: skip
    chance = 1 / 17
    print(
        f"\nsweep of {args.config}: {args.steps} steps of {args.batch} from scratch, "
        f"validation {17 * args.val_per_group} images, {os.cpu_count()} cores"
    )
    print(
        "| input px | width | params (M) | train s | images/s | CPU-h | group acc | family acc "
        "| (acc - 1/17) per CPU-h |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        gain = (r["accuracy"] - chance) / r["cpu_hours"]
        print(
            f"| {r['size']} | {r['width']} | {r['params_m']:.2f} | {r['train_s']:.0f} | "
            f"{r['images_per_s']:.0f} | {r['cpu_hours']:.3f} | {r['accuracy']:.3f} | "
            f"{r['family_accuracy']:.3f} | {gain:.2f} |"
        )


if __name__ == "__main__":
    main()
