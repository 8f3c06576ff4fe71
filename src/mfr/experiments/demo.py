"""The main job: align -> synthesize masks -> build mfr's masked-face model -> evaluate -> report.

Sized by ``src/mfr/configs/demo.yaml`` (every stage's size is a setting there) to finish in about 12
minutes from a fresh clone on 2 CPU cores. ``mfr-masked`` — dlib's network fine-tuned with
the recipe of ``mfr model build`` (``mfr.experiments.model_build``) at the demo's size — is
built and installed, then compared with the off-the-shelf dlib descriptor, dlib's weights on
mfr's chip without training, and a short from-scratch run of the paper's DCR model, on
mfr2-dev and rmfrd-dev (real masks) and held-out LFW identities (synthetic masks). The report
(``OUT/report.md``) holds the table, the CMC curves, a grid of training faces with their
synthetic masked twins, and the top-5 gallery matches of a few masked probes (Fig. 8).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from mfr.experiments.cells import Cell, baseline_cells
from mfr.experiments.config import CONFIG_DIR, ExperimentConfig, load_experiment_config
from mfr.experiments.prepare import Prepared
from mfr.experiments.runner import _test_rmfrd, run_cell
from mfr.experiments.tables import RMFRD, TESTS, markdown_table, write_table
from mfr.io import atomic_write

SCRATCH_ROW = "DCR+KP-SYN from scratch (paper, ResNet-18, short CPU run)"
DEMO_CELLS = [
    *baseline_cells("demo"),
    Cell("demo", SCRATCH_ROW, "dcr", "template"),
]


def _commit() -> str:
    try:
        root = Path(__file__).resolve().parent  # git finds the checkout above; none: unknown
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        return "unknown"


def sample_grid(masked_root: Path, identities: int = 6, tile: int = 96):
    """Full faces (top row) over their synthetic masked twins (bottom row)."""
    from PIL import Image

    from mfr.data.images import read_image
    from mfr.data.layout import MASKED_DIR, full_twin_path

    pairs = []
    for folder in sorted(p for p in masked_root.iterdir() if p.is_dir() and p.name[0] not in "_."):
        twins = sorted((folder / MASKED_DIR).glob("*"))
        if twins and full_twin_path(twins[0]).is_file():
            pairs.append((full_twin_path(twins[0]), twins[0]))
        if len(pairs) == identities:
            break
    canvas = Image.new("RGB", (len(pairs) * (tile + 4), 2 * (tile + 4)), (255, 255, 255))
    for column, (full, masked) in enumerate(pairs):
        for row, path in enumerate((full, masked)):
            face = Image.fromarray(read_image(path)).resize((tile, tile), Image.BILINEAR)
            canvas.paste(face, (column * (tile + 4), row * (tile + 4)))
    return canvas


def matches_figure(embeddings_file: Path, image_root: Path, probes: int = 6, k: int = 5):
    """Top-k full-face matches of the first masked probe of ``probes`` identities."""
    from mfr.data.images import read_image
    from mfr.report.figures import retrieval_grid, top_k_matches

    with np.load(embeddings_file, allow_pickle=False) as data:
        emb, ids = data["embeddings"], data["identities"].astype(str)
        domains, paths = data["domains"], data["paths"].astype(str)
    gallery_ids = set(ids[domains == 0])
    chosen, seen = [], set()
    for row in np.flatnonzero(domains == 1):
        if ids[row] in gallery_ids and ids[row] not in seen:
            chosen.append(int(row))
            seen.add(ids[row])
        if len(chosen) == probes:
            break
    matches = top_k_matches(emb, domains, chosen, k)
    needed = set(chosen) | {row for found in matches for row, _ in found}
    images = {}
    for row in needed:
        path = Path(paths[row])
        images[row] = read_image(path if path.is_absolute() else image_root / path)
    lookup = [images.get(i, np.zeros((8, 8, 3), np.uint8)) for i in range(len(ids))]
    return retrieval_grid(lookup, list(ids), list(zip(chosen, matches)))


def build_demo_model(config: ExperimentConfig, log) -> dict:
    """Build and install the demo-sized mfr-masked (on the demo's LFW subset); returns its
    record. A model built at full size is never replaced by the demo's: the demo's is then
    installed as ``<name>-demo``."""
    from mfr.embedders.registry import find_installed
    from mfr.experiments.model_build import BuildOptions, build_model
    from mfr.paths import data_root

    values = dict(config.model_build)
    name = values.pop("name", "mfr-masked")
    installed = find_installed(name)
    if installed is not None and not installed.record.get("demo"):
        name = f"{name}-demo"
    lfw = Path(config.lfw)
    options = BuildOptions(
        data=[lfw if lfw.is_absolute() else data_root() / lfw], name=name,
        identities=config.lfw_limit, max_per_identity=config.lfw_max_per_identity,
        heldout=config.heldout_identities, work=Path(config.data_dir),
        runs=Path(config.data_dir).parent / "models", workers=config.workers, **values,
    )  # fmt: skip
    record = build_model(options, log)
    if not record.get("demo"):
        from mfr.embedders.registry import install

        record["demo"] = True
        install(name, Path(record["run"]) / "model.pt", record)
    return record


def comparison(ours: dict, dlib: dict, key: str, what: str, name: str) -> str:
    """One report line comparing ``ours[key]`` with dlib's: "beats" or "is beaten by" only
    when their 95 % bootstrap intervals (``<key>_ci``, ``mfr eval --bootstrap``) do not
    overlap; otherwise the difference is called what it is, within the noise."""
    a, b = ours[key], dlib[key]
    head = f"- {what}: {name} {a:.1f} vs dlib {b:.1f}"
    ca, cb = ours.get(f"{key}_ci"), dlib.get(f"{key}_ci")
    if not (ca and cb):
        return f"{head} (no intervals computed: set `bootstrap` to judge the noise)."
    spans = f"95 % intervals [{ca[0]:.1f}, {ca[1]:.1f}] and [{cb[0]:.1f}, {cb[1]:.1f}]"
    if ca[0] > cb[1]:
        return f"{head} — {name} beats dlib ({spans} do not overlap)."
    if ca[1] < cb[0]:
        return f"{head} — dlib beats {name} ({spans} do not overlap)."
    side = "ahead" if a > b else "behind" if a < b else "level"
    return (
        f"{head} — {name} is {side} by {abs(a - b):.1f} points, within the noise ({spans} overlap)."
    )


def _rmfrd_subset(prepared: Prepared) -> str:
    limit = prepared.config.rmfrd_identities
    return f", its first {limit} identities by name" if limit else ""


def _scratch_size(prepared: Prepared) -> str:
    train = prepared.config.train
    steps, p, k = train.get("steps"), train.get("p"), train.get("k")
    return f"{steps} steps of {p}x{k} images at {train.get('input_size')} px"


def write_report(
    out: Path, results: list[dict], prepared: Prepared, seconds: float, model: dict
) -> Path:
    """Write ``out/report.md`` with its figures beside it."""
    from mfr.report.figures import save_png

    ours = results[-1]
    cell_dir = out / ours["key"]
    masked_root = prepared.masked("lfw", "template")
    save_png(sample_grid(masked_root), out / "samples.png")
    figures = ["![training faces and their synthetic masked twins](samples.png)"]
    if (cell_dir / "mfr2.npz").is_file():
        grid = matches_figure(cell_dir / "mfr2.npz", prepared.aligned("mfr2"))
        save_png(grid, out / "matches.png")
        figures.append("![top-5 gallery matches of masked probes (mfr-masked)](matches.png)")
    base = next(r for r in results if r.get("row", "").startswith("dlib"))
    verdict = [
        comparison(ours.get(test) or {}, base.get(test) or {}, key, f"{name} on {title}",
                   model["name"])
        for test, title in (("mfr2", "mfr2-dev"), ("rmfrd", "rmfrd-dev"))
        for key, name in (("rank1", "Rank-1"), ("mAP", "mAP"))
        if None not in ((ours.get(test) or {}).get(key), (base.get(test) or {}).get(key))
    ]  # fmt: skip
    rmfrd = ours.get("rmfrd") or {}
    lines = [
        "# mfr demo report",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · commit {_commit()} · "
        f"{platform.processor() or platform.machine()} × {os.cpu_count()} cores · "
        f"this run {seconds / 60:.1f} min (finished steps of earlier runs are reused)",
        "",
        f"**{model['name']}** (installed; `mfr verify`, `enroll`, `identify`, `embed` and "
        f"`FaceRecognizer.load()` now use it by default): dlib's network fine-tuned for "
        f"{model['steps']} steps ({model['head_warmup_steps']} of them head warm-up) on "
        f"{model['training_images']['images']} images (full faces and their KP-SYN + KP-CVX "
        f"twins) of {model['training_images']['identities']} LFW identities, with DCR and "
        "distillation — the "
        "recipe of `mfr model build` at the demo's size (the full build trains longer on LFW + "
        f"CelebA). Its threshold: {model['threshold']:.4f}, {model['operating_point']}.",
        "",
        "Masked probes against full-face galleries. *mfr2-dev* and *rmfrd-dev*: real photos "
        "with real masks (never trained or tuned on), scored end to end: a masked probe "
        "`mfr align` could not align counts as a miss (rmfrd-dev"
        f"{_rmfrd_subset(prepared)}: {rmfrd.get('failed_probes', 0)} of its "
        f'{rmfrd.get("num_probes", 0)} masked probes; a miss is also a "different" verdict in '
        "every verification pair it is drawn into). *held-out LFW*: "
        "identities kept out of training, their masked twins (KP-CVX; mfr-masked also trained "
        "on KP-CVX, on other identities) against their other full faces. The from-scratch "
        f"row is a short CPU run of the paper's recipe ({_scratch_size(prepared)}), not its "
        "converged model.",
        "",
        markdown_table(results, [*TESTS, RMFRD]),
        *verdict,
        "",
        "![CMC on mfr2-dev](demo-cmc.png)",
        "",
        *figures,
        "",
        "Green boxes: same identity as the probe; red: another identity.",
        "",
    ]
    report = out / "report.md"
    with atomic_write(report, "w") as handle:
        handle.write("\n".join(lines))
    return report


def _with_rmfrd(result: dict, model: str, prepared: Prepared, out: Path, log) -> dict:
    if prepared.config.rmfrd is None:
        return result
    if "rmfrd" not in result:
        result["rmfrd"] = _test_rmfrd(model, prepared, out, log)
        with atomic_write(out / "result.json", "w") as handle:
            json.dump(result, handle, indent=2)
    return result


def run_demo(out: Path, config_path: Path | None = None, log=print) -> Path:
    """Run the whole pipeline at demo scale; returns the report's path."""
    started = time.perf_counter()
    config = load_experiment_config(config_path or CONFIG_DIR / "demo.yaml")
    prepared = Prepared(config, log)
    stage = lambda name: log(f"== {name} ({(time.perf_counter() - started) / 60:.1f} min)")  # noqa: E731
    results = []
    for cell in DEMO_CELLS:
        stage(cell.row)
        result = run_cell(cell, config, prepared, out / cell.key, log)
        model = cell.baseline or str(out / cell.key / "train" / "final.pt")
        result = _with_rmfrd(result, model, prepared, out / cell.key, log)
        results.append({**result, "key": cell.key})
    stage("mfr-masked: building the masked-face model")
    record = build_demo_model(config, log)
    row = f"{record['name']} (dlib's network fine-tuned, {record['steps']} steps)"
    cell = Cell("demo", row, baseline=str(Path(record["run"]) / "model.pt"))
    stage(f"{record['name']}: testing")
    result = run_cell(cell, config, prepared, out / cell.key, log)
    result = _with_rmfrd(result, cell.baseline, prepared, out / cell.key, log)
    results.append({**result, "key": cell.key})
    stage("report")
    write_table("demo", results, out, [*TESTS, RMFRD])
    return write_report(out, results, prepared, time.perf_counter() - started, record)
