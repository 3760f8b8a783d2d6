"""``sarise evaluate``: how well a classifier tells the 17 wallpaper groups apart.

Sets, each with accuracy, per-group accuracy and a confusion matrix:

- ``test``: the held-out test split (``test.zarr``, or generated like it);
- ``ood-<source>``: motif sources the model never saw in training (e.g. atoms);
- ``noise-<sigma>``: the test images plus Gaussian noise of that sigma on [0, 1];
- ``folder``: a user's labelled images laid out as ``<group>/<image file>``.

Embedding invariance: the mean cosine similarity of the features of a pattern and of the
same pattern rendered exactly at another orientation and phase, per group.
Results go to ``report.json``, ``report.md`` and ``confusion-<set>.png``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sarise._files import write_json_atomic
from sarise._progress import progress
from sarise._version import __version__
from sarise.config import MOTIF_SOURCES, EvaluateConfig, IngestConfig, SymmetryConfig
from sarise.errors import SariseError
from sarise.models.export import load_model

__all__ = [
    "FAMILIES",
    "FOLDER_MODES",
    "evaluate",
    "predict",
    "read_labelled_folder",
]

logger = logging.getLogger(__name__)

#: How ``--folder`` images become model inputs (:func:`read_labelled_folder`).
FOLDER_MODES = ("auto", "crop", "tile")


#: The crystal family (lattice system) of each plane group: what a lattice alone tells,
#: before any rotation or mirror is seen (cm and cmm sit on centred rectangular lattices).
FAMILIES = {
    "p1": "oblique", "p2": "oblique",
    "pm": "rectangular", "pg": "rectangular", "cm": "rectangular", "pmm": "rectangular",
    "pmg": "rectangular", "pgg": "rectangular", "cmm": "rectangular",
    "p4": "square", "p4m": "square", "p4g": "square",
    "p3": "hexagonal", "p3m1": "hexagonal", "p31m": "hexagonal", "p6": "hexagonal",
    "p6m": "hexagonal",
}  # fmt: skip


@torch.inference_mode()
def predict(model: torch.nn.Module, images: np.ndarray, batch_size: int = 64,
            precision: str = "auto", invariant: str = "none"):  # fmt: skip
    """Logits and features of images ``[n, H, W]`` or ``[n, C, H, W]`` (any scale), through
    :func:`sarise.features.embed` (standardised as in training)."""
    from sarise.features import embed

    feats, logits = embed(model, images, batch_size=batch_size, precision=precision,
                          invariant=invariant)  # fmt: skip
    return logits, feats


def _precision(model: torch.nn.Module, precision: str) -> str:
    from sarise.precision import resolve

    return resolve(precision, next(model.parameters()).device.type)


def _scores(labels: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, lattice-family accuracy, per-group accuracy and the confusion matrix of
    predicted class indices (-1: no prediction, counted wrong and left out of the matrix)."""
    n = len(classes)
    some = pred >= 0
    cm = np.bincount(labels[some] * n + pred[some], minlength=n * n).reshape(n, n)
    per = {c: (float(np.mean(pred[labels == i] == i)) if np.any(labels == i) else None)
           for i, c in enumerate(classes)}  # fmt: skip
    family = np.array([FAMILIES.get(c, c) for c in classes] + [""])
    same_family = family[labels] == family[pred] if len(labels) else np.zeros(0, bool)
    return {"n": len(labels), "accuracy": float((pred == labels).mean()) if len(labels) else None,
            "family_accuracy": float(same_family.mean()) if len(labels) else None,
            "per_group": per, "confusion": cm.tolist()}  # fmt: skip


def _file_measured(measured: np.ndarray, combined: np.ndarray) -> tuple[int, np.ndarray]:
    """A file's measured group and combined log-probabilities from its tiles' (:func:`_measured`):
    the commonest group and the mean over the tiles where a lattice is found, since a
    lattice may cover only part of a scan (an island, a terrace, a grain); over all tiles
    (the model alone, -1) where none is."""
    found = measured >= 0
    if not found.any():
        return -1, combined.mean(0)
    return int(np.bincount(measured[found]).argmax()), combined[found].mean(0)


def _measured(images: np.ndarray, logits: np.ndarray, classes: list[str]):
    """The measured group (class index, -1 without a lattice) and the combined
    log-probabilities of images ``[n, (C,) H, W]`` (first channel) with these logits."""
    from sarise.symmetry_measure import combined_log_probabilities, measured_classes, score_rows

    images = np.asarray(images)
    scores = score_rows(images[:, 0] if images.ndim == 4 else images)
    return measured_classes(scores, classes), combined_log_probabilities(logits, scores, classes)


def _generated(config: SymmetryConfig, per_group: int, split: str = "test"):
    from sarise.symmetry import sample

    n = 17 * per_group
    images = np.empty((n, config.size, config.size), np.float32)
    labels = np.empty(n, np.int64)
    for i in range(n):
        im = sample(i, seed=config.seed, split=split, config=config)
        images[i], labels[i] = im.image, im.label
    return images, labels


def _read_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import zarr

    if not (path / "zarr.json").exists():
        raise SariseError(f"{path} is not a symmetry dataset store (no zarr.json)")
    g = zarr.open_group(path, mode="r")
    return np.asarray(g["images"][:], np.float32), np.asarray(g["label"][:], np.int64)


def read_labelled_folder(
    folder: str | Path, size: int, classes: list[str], *, mode: str = "auto",
    ingest: IngestConfig | None = None,
) -> tuple[list[np.ndarray], np.ndarray, list[str], list[tuple[str, str]]]:  # fmt: skip
    """Read ``<folder>/<group>/<image>`` files as model inputs, never distorted.

    A group folder may be named as in :data:`sarise.symmetry.GROUPS` or any usual way
    (``P4MM``, ``c2mm``, ``*632``: :func:`sarise.symmetry.group_name`).

    Every file the reader registry reads counts (images and instrument formats; a folder
    is walked as ``sarise ingest`` walks it, :func:`sarise.ingest.list_files`), and its
    first channel of ``ingest.channels`` is preprocessed as ingest would
    (:func:`sarise.ingest.preprocess_scan`: ``flatten``, ``clip``; defaults where
    ``ingest`` is None), so the evaluation sees what extraction will.

    Parameters
    ----------
    mode : {'auto', 'crop', 'tile'}
        ``crop``: the centred square of the shorter side, resampled isotropically to
        ``size``. ``tile``: non-overlapping ``size`` tiles at native resolution (an image
        smaller than ``size`` falls back to ``crop``); the prediction averages them.
        ``auto``: the scale from the image's own lattice (:func:`sarise.preprocess.fit_cells`):
        ``crop`` where the cells stay large enough, else tiles of the image resampled to
        16 px cells.

    Returns
    -------
    inputs : list of ndarray ``[k, size, size]`` (k tiles per image), labels, paths,
    errors : list of (path, reason) for files that could not be used.
    """
    from sarise.ingest import list_files
    from sarise.symmetry import group_name

    folder = Path(folder)
    if not folder.is_dir():
        raise SariseError(f"{folder} is not a folder")
    ingest = ingest or IngestConfig()
    inputs, labels, paths, errors = [], [], [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        group = group_name(sub.name)
        if group not in classes:
            errors.append((str(sub), f"not a group name (one of {', '.join(classes)})"))
            continue
        walk_errors: list[tuple[str, str]] = []
        files = list_files([sub], walk_errors)  # as ingest walks a folder
        errors += [(str(p), r) for p, r in walk_errors]
        for f in files:
            try:
                inputs.append(_image_tiles(_read_grey(f, ingest), size, mode))
            except Exception as exc:  # one bad file never stops the evaluation
                errors.append((str(f), str(exc) or type(exc).__name__))
                continue
            labels.append(classes.index(group))
            paths.append(str(f))
    if not inputs:
        raise SariseError(f"no readable labelled images under {folder} (<group>/<image file>)")
    return inputs, np.asarray(labels, np.int64), paths, errors


def _read_grey(path: Path, ingest: IngestConfig) -> np.ndarray:
    """The first channel ``ingest.channels`` selects from any file the reader registry
    reads, levelled, clipped and scaled to [0, 1] as ``sarise ingest`` stores it."""
    from sarise.ingest import preprocess_scan
    from sarise.io import read_scan

    return preprocess_scan(read_scan(path), ingest)[1][0].astype(np.float32)


def _image_tiles(a: np.ndarray, size: int, mode: str) -> np.ndarray:
    from sarise.preprocess import fit_cells, fit_square, tiles

    if mode not in FOLDER_MODES:
        raise ValueError(f"mode must be one of {', '.join(FOLDER_MODES)}, got {mode!r}")
    if mode == "auto":
        return fit_cells(a, size)[0].astype(np.float32)
    if mode == "tile" and min(a.shape) >= size:
        return tiles(a, size)[0].astype(np.float32)
    return fit_square(a, size, "crop")[None].astype(np.float32)


def _invariance(model, config: SymmetryConfig, per_group: int, classes, batch: int, seed: int,
                precision: str = "auto", invariant: str = "none"):  # fmt: skip
    from sarise.symmetry import sample

    rng = np.random.default_rng([seed, 17])
    a, b, labels = [], [], []
    for i in range(17 * per_group):
        im = sample(i, seed=config.seed, split="test", config=config, augment=False)
        other = im.transformed(rng.uniform(0.0, 360.0), rng.random(2))
        a.append(im.image)
        b.append(other.image)
        labels.append(im.label)
    labels = np.asarray(labels)
    la, fa = predict(model, np.stack(a), batch, precision, invariant)
    lb, fb = predict(model, np.stack(b), batch, precision, invariant)
    cos = (fa * fb).sum(1) / (np.linalg.norm(fa, axis=1) * np.linalg.norm(fb, axis=1) + 1e-12)
    agree = la.argmax(1) == lb.argmax(1)
    return {
        "n_pairs": len(labels),
        "mean_cosine": float(cos.mean()),
        "prediction_agreement": float(agree.mean()),
        "per_group": {
            c: float(cos[labels == k].mean()) for k, c in enumerate(classes) if (labels == k).any()
        },
    }


def _plot_confusion(cm: np.ndarray, classes: list[str], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7.5, 6.5), dpi=110)
    im = ax.imshow(rows, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="black" if rows[i, j] > 0.5 else "white")  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true group")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".partial.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def evaluate(
    model_path: str | Path | None,
    out: str | Path,
    *,
    test: str | Path | None = None,
    folder: str | Path | None = None,
    folder_mode: str = "auto",
    config: EvaluateConfig | None = None,
    ingest: IngestConfig | None = None,
    test_per_group: int = 64,
    sets: Iterable[str] = ("test", "ood", "noise", "invariance", "simulated"),
    show_progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a model; write ``report.json``, ``report.md`` and confusion PNGs to ``out``.

    Parameters
    ----------
    model_path : path or None
        ``.safetensors`` (with its ``.json``) or a training ``.ckpt``; None for the
        shipped model.
    out : path
        Folder for the report.
    test : path, optional
        ``test.zarr``; without it the test set is generated (``test_per_group`` per group)
        with the generator settings the model was trained with.
    folder : path, optional
        Labelled images ``<group>/<image file>`` to evaluate as well.
    config : EvaluateConfig, optional
        Sizes of the OOD and invariance sets, noise levels, batch size.
    ingest : IngestConfig, optional
        How ``folder``'s files are read: channel, levelling, clipping (as ``sarise
        ingest``; its defaults where None).
    sets : iterable of {'test', 'ood', 'noise', 'invariance', 'simulated'}
        Which of the generated evaluations to run (``folder`` runs whenever given).
        ``simulated``: images of real crystal projections (graphene, hBN, MoS2, SrTiO3
        [001] and [110], rutile [001]; :mod:`sarise.symmetry.crystals`) with shot noise and
        scan distortions, 128 px as ingest stores them, scored by group, lattice family
        and crystal.

    Returns
    -------
    dict
        The report (as written to ``report.json``).
    """
    cfg = config or EvaluateConfig()
    sets = set(sets)
    unknown = sets - {"test", "ood", "noise", "invariance", "simulated"}
    if unknown:
        raise SariseError(f"unknown evaluation sets {sorted(unknown)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model, info = load_model(model_path)
    classes = info["classes"]
    trained = (info.get("trained") or {}).get("config") or {}
    sym = SymmetryConfig.model_validate(trained.get("symmetry", {"size": info["image_size"]}))
    if sym.size != info["image_size"]:
        sym = sym.model_copy(update={"size": info["image_size"]})
    report: dict[str, Any] = {
        "model": str(model_path or "shipped"),
        "sha256": info.get("sha256"),
        "architecture": info["model"],
        "image_size": info["image_size"],
        "trained_motif_sources": list(sym.motif_sources),
        "precision": _precision(model, cfg.precision),
        "invariant": cfg.invariant,
        "version": __version__,
        "sets": {},
    }

    def score(name: str, labels, logits, measured, combined, describe: str) -> dict[str, Any]:
        res = _scores(labels, logits.argmax(1), classes)
        res["description"] = describe
        title = f"{name}: accuracy {res['accuracy']:.3f} (n={res['n']})"
        _plot_confusion(np.asarray(res["confusion"]), classes, title, out / f"confusion-{name}.png")
        if combined is not None:
            alone = _scores(labels, measured, classes)
            res["measured"] = {"accuracy": alone["accuracy"],
                               "family_accuracy": alone["family_accuracy"],
                               "no_lattice": float(np.mean(measured < 0))}  # fmt: skip
            res["combined"] = _scores(labels, combined.argmax(1), classes)
            _plot_confusion(np.asarray(res["combined"]["confusion"]), classes,
                            f"{name}, combined: accuracy {res['combined']['accuracy']:.3f}",
                            out / f"confusion-{name}-combined.png")  # fmt: skip
            logger.info("%s: accuracy %.4f, measured %.4f, combined %.4f", name,
                        res["accuracy"], alone["accuracy"], res["combined"]["accuracy"])  # fmt: skip
        else:
            logger.info("%s: accuracy %.4f (lattice family %.4f) on %d images", name,
                        res["accuracy"], res["family_accuracy"], res["n"])  # fmt: skip
        report["sets"][name] = res
        return res

    def run(name: str, images, labels, describe: str):
        """Score the model (and the measurement): its logits and combined log-probabilities."""
        logits, _ = predict(model, images, cfg.batch_size, cfg.precision, cfg.invariant)
        measured = combined = None
        if cfg.measured:
            measured, combined = _measured(images, logits, classes)
        score(name, labels, logits, measured, combined, describe)
        return logits, combined

    steps: list[tuple[str, Callable[[], None]]] = []
    test_data: dict[str, np.ndarray] = {}

    def load_test() -> None:
        if test is not None:
            test_data["x"], test_data["y"] = _read_split(Path(test))
            where = f"{test}"
        else:
            test_data["x"], test_data["y"] = _generated(sym, test_per_group)
            where = f"generated, {test_per_group} per group"
        if test_data["x"].shape[-1] != info["image_size"]:
            logger.warning("test images are %d px, the model was trained on %d px",
                           test_data["x"].shape[-1], info["image_size"])  # fmt: skip
        if "test" in sets:
            run("test", test_data["x"], test_data["y"], f"held-out test split ({where})")

    if sets & {"test", "noise"}:
        steps.append(("test", load_test))
    if "noise" in sets:
        for sigma in cfg.noise:

            def noisy(sigma=sigma) -> None:
                rng = np.random.default_rng([int(sigma * 1e6), 29])
                x = test_data["x"] + rng.normal(0.0, sigma, test_data["x"].shape).astype(np.float32)
                run(f"noise-{sigma:g}", x, test_data["y"],
                    f"test images plus Gaussian noise, sigma {sigma:g} on [0, 1]")  # fmt: skip

            steps.append((f"noise-{sigma:g}", noisy))
    if "ood" in sets and cfg.ood_per_group:
        for source in MOTIF_SOURCES:
            if source in sym.motif_sources:
                continue

            def ood(source=source) -> None:
                c = sym.model_copy(update={"motif_sources": (source,)})
                x, y = _generated(c, cfg.ood_per_group)
                run(f"ood-{source}", x, y, f"{source} motifs, never seen in training")

            steps.append((f"ood-{source}", ood))
    if "simulated" in sets and cfg.simulated_per_crystal:

        def simulated() -> None:
            from sarise.symmetry.crystals import simulated_set

            x, groups, crystals = simulated_set(cfg.simulated_per_crystal, 128, seed=sym.seed)
            labels = np.array([classes.index(g) for g in groups])
            logits, combined = run("simulated", x, labels, "simulated atomic-resolution images "
                                   "of real crystal projections (shot noise, scan distortions), "
                                   "128 px")  # fmt: skip
            pred = logits.argmax(1)
            per = {}
            for name in dict.fromkeys(crystals):
                idx = [i for i, c in enumerate(crystals) if c == name]
                p, t = pred[idx], labels[idx]
                counts = np.bincount(p, minlength=len(classes))
                per[name] = {"group": classes[t[0]], "n": len(idx),
                             "accuracy": float((p == t).mean()),
                             "family_accuracy": float(np.mean([FAMILIES[classes[k]] ==
                                                               FAMILIES[classes[t[0]]] for k in p])),
                             "most_predicted": classes[int(counts.argmax())]}  # fmt: skip
                if combined is not None:
                    per[name]["combined_accuracy"] = float((combined[idx].argmax(1) == t).mean())
            report["sets"]["simulated"]["per_crystal"] = per

        steps.append(("simulated", simulated))
    if "invariance" in sets and cfg.invariance_per_group:

        def inv() -> None:
            report["invariance"] = _invariance(model, sym, cfg.invariance_per_group, classes,
                                               cfg.batch_size, sym.seed, cfg.precision,
                                               cfg.invariant)  # fmt: skip
            logger.info("invariance: mean cosine %.4f", report["invariance"]["mean_cosine"])

        steps.append(("invariance", inv))
    if folder is not None:

        def labelled() -> None:
            from scipy.special import softmax

            inputs, labels, paths, errors = read_labelled_folder(
                folder, info["image_size"], classes, mode=folder_mode, ingest=ingest
            )
            # tiles of many images per pass (a CPU forward pass has a fixed number of rows)
            per_tile = []
            for lo in range(0, len(inputs), 256):
                part = inputs[lo : lo + 256]
                flat = predict(model, np.concatenate(part), cfg.batch_size, cfg.precision,
                               cfg.invariant)[0]  # fmt: skip
                per_tile += np.split(flat, np.cumsum([len(t) for t in part])[:-1])
            logits = np.stack([lg.mean(0) for lg in per_tile])
            measured = combined = None
            if cfg.measured:
                files = [_file_measured(*_measured(t, lg, classes))
                         for t, lg in zip(inputs, per_tile, strict=True)]  # fmt: skip
                measured = np.array([m for m, _ in files])
                combined = np.stack([c for _, c in files])
            res = score("folder", labels, logits, measured, combined,
                        f"labelled images in {folder} ({folder_mode})")  # fmt: skip
            prob = softmax(logits.astype(np.float64), axis=1).max(1)  # the predicted group's
            res["files"] = [{"path": p, "label": classes[t], "predicted": classes[int(k)],
                             "probability": float(q)}
                            for p, t, k, q in zip(paths, labels, logits.argmax(1), prob,
                                                  strict=True)]  # fmt: skip
            if combined is not None:
                for f, m, c in zip(res["files"], measured, combined.argmax(1), strict=True):
                    f["measured"] = classes[m] if m >= 0 else None
                    f["combined"] = classes[int(c)]
            res["errors"] = [{"path": p, "reason": r} for p, r in errors]
            for p, r in errors:
                logger.error("%s: %s", p, r)

        steps.append(("folder", labelled))

    with progress(len(steps), "evaluate", enabled=show_progress, logger=logger) as bar:
        for _name, step in steps:
            step()
            bar.advance(1)
    write_json_atomic(out / "report.json", report)
    (out / "report.md").write_text(render_markdown(report))
    return report


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a summary table, per-group accuracy, invariance."""
    sets = report["sets"]
    lines = [
        "# Symmetry classifier evaluation",
        "",
        f"Model `{report['model']}` (sha256 `{(report.get('sha256') or '')[:16]}`), "
        f"{report['architecture']['arch']} width {report['architecture']['width']}, "
        f"{report['image_size']} px; trained on motif sources: "
        f"{', '.join(report['trained_motif_sources'])}. sarise {report['version']}.",
        "",
        "Accuracy by group / by lattice family: of the model, of the training-free symmetry "
        "measurement (no lattice found counts as wrong), and of the two combined.",
        "",
        "| set | images | model | measured | combined | what |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]

    def pair(s: dict | None) -> str:
        return f"{s['accuracy']:.4f} / {s['family_accuracy']:.4f}" if s else ""

    for name, s in sets.items():
        lines.append(f"| {name} | {s['n']} | {pair(s)} | {pair(s.get('measured'))} | "
                     f"{pair(s.get('combined'))} | {s['description']} |")  # fmt: skip
    crystals = sets.get("simulated", {}).get("per_crystal")
    if crystals:
        lines += ["", "## Simulated crystals", "",
                  "| crystal | group | images | accuracy | lattice family | most predicted "
                  "| combined |", "| --- | --- | ---: | ---: | ---: | --- | ---: |"]  # fmt: skip
        lines += [f"| {c} | {v['group']} | {v['n']} | {v['accuracy']:.3f} | "
                  f"{v['family_accuracy']:.3f} | {v['most_predicted']} | "
                  + (f"{v['combined_accuracy']:.3f} |" if "combined_accuracy" in v else " |")
                  for c, v in crystals.items()]  # fmt: skip
    if sets:
        names = list(sets)
        lines += ["", "## Per-group accuracy", "",
                  "Model (/ model and measurement combined, where measured).", "",
                  "| group | " + " | ".join(names) + " |",
                  "| --- |" + " ---: |" * len(names)]  # fmt: skip
        groups = next(iter(sets.values()))["per_group"]

        def cell(s: dict, g: str) -> str:
            vals = [s["per_group"].get(g), (s.get("combined") or {}).get("per_group", {}).get(g)]
            return " / ".join(f"{v:.3f}" for v in vals if v is not None)

        for g in groups:
            lines.append(f"| {g} | " + " | ".join(cell(sets[n], g) for n in names) + " |")
    inv = report.get("invariance")
    if inv:
        lines += [
            "",
            "## Embedding invariance",
            "",
            f"Mean cosine similarity of the features of {inv['n_pairs']} patterns and of the same "
            f"patterns rendered exactly at another orientation and phase: "
            f"**{inv['mean_cosine']:.4f}**; the predicted group agrees for "
            f"{inv['prediction_agreement']:.3f} of the pairs.",
            "",
            "| group | mean cosine |",
            "| --- | ---: |",
        ]
        lines += [f"| {g} | {v:.4f} |" for g, v in inv["per_group"].items()]
    if "folder" in sets and sets["folder"].get("errors"):
        lines += ["", "## Files not evaluated", ""]
        lines += [f"- `{e['path']}`: {e['reason']}" for e in sets["folder"]["errors"]]
    lines += ["", "Confusion matrices: " + ", ".join(f"`confusion-{n}.png`" for n in sets), ""]
    return "\n".join(lines)
