"""Datasets an experiment needs, made once and cached under ``data_dir``.

- ``lfw-<size>``, ``celeba-<size>``, ``mfr2-dev-<size>``: aligned faces (``mfr align``);
- ``<name>-<size>-<method>``: masked twins (``mfr mask``, or ``mfr gan generate`` for GANs);
- ``splits/``: the held-out LFW identities (synthetic-mask test) and the training exclude list.

A finished step leaves a ``.mfr-complete`` marker so later runs skip it (a GAN's twins, made for
the training identities only, record the split and the checkpoint in it); an interrupted one is
resumed by the library function that builds it (the steps of ``mfr align``, ``mfr mask``,
``mfr gan generate`` and ``mfr embed``, called directly).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from functools import cache
from pathlib import Path

from mfr.data.layout import FULL, MASKED, domain_of, image_relpath, write_manifest_rows
from mfr.errors import MfrError
from mfr.experiments.cells import AD_HOC
from mfr.experiments.config import ExperimentConfig
from mfr.io import atomic_write, read_text
from mfr.paths import data_root

MARKER = ".mfr-complete"


def align(
    source: Path,
    target: Path,
    workers: int,
    log: Callable[[str], None],
    size: int = 112,
    pick: str = "largest",
) -> None:
    """``mfr align SOURCE TARGET``: ``mfr.align.batch.align_folder`` with its defaults,
    ``workers`` processes (0: one per CPU core); its notes and summary line go to ``log``."""
    import os

    from mfr.align.batch import align_folder

    summary = align_folder(source, target, size=size, workers=workers or os.cpu_count() or 1,
                           pick=pick)  # fmt: skip
    for note in summary.notes:
        log(f"note: {note}")
    log(summary.line())


def mask(
    source: Path, target: Path, method: str, seed: int, workers: int, log: Callable[[str], None]
) -> None:
    """``mfr mask SOURCE TARGET --method METHOD``: masked twins (``mfr.masking.generate``)."""
    from mfr.masking.generate import mask_folder

    report = mask_folder(source, target, method, seed, workers=max(int(workers), 1))
    for _, reason in sorted(report.failures):
        log(f"skipped: {reason}")
    log(f"mask ({method}): {report.written} written, {report.resumed} already done, "
        f"{len(report.failures)} failed of {report.total} -> {target}")  # fmt: skip


def generate(
    checkpoint: Path,
    source: Path,
    target: Path,
    log: Callable[[str], None],
    exclude: Collection[str] = (),
) -> None:
    """``mfr gan generate``: a GAN-masked twin of every full face whose identity is not in
    ``exclude`` (``mfr.train.gan_generate``)."""
    from mfr.train.gan_generate import generate_dataset

    counts = generate_dataset(Path(checkpoint), source, target, exclude=exclude)
    log(f"{target}: generated {counts['generated']}, kept {counts['existing']} existing, "
        f"skipped {counts['skipped']} unreadable")  # fmt: skip


def embed(dataset: Path, model: str, out: Path, log: Callable[[str], None]) -> None:
    """``mfr embed DATASET --model MODEL --out OUT`` (``mfr.embedders.embed_dataset``)."""
    from mfr.embedders import embed_dataset

    summary = embed_dataset(dataset, model, out, log=log)
    log(f"{out}: {summary['images']} embeddings ({summary['dim']}-d, {summary['model']}); "
        f"{summary['bad_files']} bad files skipped")  # fmt: skip


@cache
def _checkpoint_digest(path: Path, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _checkpoint_line(path: Path) -> str | None:
    """``checkpoint: <SHA-256>`` of a GAN checkpoint file (hashed once per file version),
    or None when there is no such file."""
    if not path.is_file():
        return None
    status = path.stat()
    return f"checkpoint: {_checkpoint_digest(path, status.st_size, status.st_mtime_ns)}\n"


def _stable_order(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


class Prepared:
    """Resolves and, when missing, builds the datasets of one experiment configuration."""

    def __init__(self, config: ExperimentConfig, log: Callable[[str], None] = print):
        self.config = config
        self.log = log
        self.root = Path(config.data_dir)
        self.source_root = data_root()

    def _shared(self, relative: str) -> Path:
        path = Path(relative)
        return path if path.is_absolute() else self.source_root / path

    # -- aligned faces ----------------------------------------------------------------------
    def _lfw_source(self) -> Path:
        """The LFW images, or a manifest of its ``lfw_limit`` largest identities."""
        images = self._shared(self.config.lfw)
        limit, cap = self.config.lfw_limit, self.config.lfw_max_per_identity
        if limit <= 0 and cap <= 0:
            return images
        if not images.is_dir():
            raise MfrError(f"{images}: LFW images not found (set MFR_DATA)")
        folders = sorted(
            (p for p in images.iterdir() if p.is_dir()),
            key=lambda p: (-sum(1 for _ in p.iterdir()), p.name),
        )
        folders = folders[:limit] if limit > 0 else folders
        rows = []
        for folder in sorted(folders):
            files = sorted(folder.iterdir())
            rows += [(str(image.resolve()), folder.name, FULL)
                     for image in (files[:cap] if cap > 0 else files)]  # fmt: skip
        return write_manifest_rows(self.root / "splits" / f"{self.lfw_name()}.csv", rows)

    def lfw_name(self) -> str:
        """Folder name of the aligned LFW (subset) at the configured size."""
        limit, cap = self.config.lfw_limit, self.config.lfw_max_per_identity
        suffix = (f"-top{limit}" if limit > 0 else "") + (f"-max{cap}" if cap > 0 else "")
        return f"lfw{suffix}-{self.config.size}"

    def _rmfrd_source(self, folder: Path) -> tuple[str, Path]:
        """rmfrd-dev, or a manifest of its first ``rmfrd_identities`` identities (by name)."""
        limit = self.config.rmfrd_identities
        name = f"{folder.name}{f'-first{limit}' if limit > 0 else ''}-{self.config.size}"
        if limit <= 0:
            return name, folder
        people = sorted(p for p in folder.iterdir() if p.is_dir() and p.name[0] not in "._")
        rows = [
            (str(image.resolve()), person.name, domain_of(image.relative_to(person).parts[:-1]))
            for person in people[:limit]
            for image in sorted(person.rglob("*"))
            if image.is_file()
        ]
        return name, write_manifest_rows(self.root / "splits" / f"{name}.csv", rows)

    def aligned(self, dataset: str) -> Path:
        """Aligned copy of ``lfw``, ``celeba``, ``mfr2`` or ``rmfrd`` (built when missing)."""
        if dataset == "lfw":
            name, source = self.lfw_name(), None
        else:
            relative = {"celeba": self.config.celeba, "mfr2": self.config.mfr2,
                        "rmfrd": self.config.rmfrd}[dataset]  # fmt: skip
            if relative is None:
                raise MfrError(f"dataset {dataset!r} is switched off in the experiment config")
            name, source = f"{Path(relative).name}-{self.config.size}", self._shared(relative)
            if dataset == "rmfrd":
                name, source = self._rmfrd_source(source)
        target = self.root / name
        if not (target / MARKER).is_file():
            source = self._lfw_source() if source is None else source
            self.log(f"aligning {source} -> {target}")
            align(source, target, self.config.workers, self.log, size=self.config.size)
            (target / MARKER).touch()
        return target

    def source(self, dataset: str) -> Path:
        """The ``celeba``, ``mfr2`` or ``rmfrd`` images before alignment (end-to-end
        evaluation counts the faces ``mfr align`` could not align)."""
        relative = {"celeba": self.config.celeba, "mfr2": self.config.mfr2,
                    "rmfrd": self.config.rmfrd}[dataset]  # fmt: skip
        if relative is None:
            raise MfrError(f"dataset {dataset!r} is switched off in the experiment config")
        if dataset == "rmfrd":
            return self._rmfrd_source(self._shared(relative))[1]
        return self._shared(relative)

    def has_celeba(self) -> bool:
        return self.config.celeba is not None and self._shared(self.config.celeba).is_dir()

    # -- masked twins -----------------------------------------------------------------------
    def masked(self, dataset: str, source: str, seed: int = 0) -> Path | None:
        """``dataset`` with masked twins from ``source`` (an ad-hoc method, or a GAN of
        ``gan_checkpoints``: see :meth:`_gan_masked`); None when a GAN's twins are neither
        made nor makeable (no checkpoint)."""
        aligned = self.aligned(dataset)
        target = aligned.with_name(f"{aligned.name}-{source}")
        if source not in AD_HOC:
            return self._gan_masked(aligned, target, source)
        if not (target / MARKER).is_file():
            self.log(f"masking {aligned} with {source} -> {target}")
            mask(aligned, target, source, seed, self.config.workers, self.log)
            (target / MARKER).touch()
        return target

    def _gan_masked(self, aligned: Path, target: Path, source: str) -> Path | None:
        """GAN twins of the training identities only: every test's probes are ad-hoc twins,
        so the held-out and MFR2-overlap identities get none (~58 % of LFW + CelebA's faces
        at the finetune scale). The marker records the split (a hash of the left-out names)
        and the checkpoint (SHA-256 of its file). Finished twins of this split are used even
        when the checkpoint file is gone; an empty marker (an older run, every identity,
        checkpoint not recorded) is used as it is. Raises ``MfrError`` when the checkpoint
        file differs from the one that made the folder (twins of two generators must not
        mix: delete the folder)."""
        marker = target / MARKER
        done = read_text(marker, "marker") if marker.is_file() else None
        if done == "":
            return target
        left_out = self.untrained_identities()
        split = "left out: " + hashlib.sha1("\n".join(left_out).encode()).hexdigest() + "\n"
        checkpoint = self.config.gan_checkpoints.get(source)
        made_by = _checkpoint_line(Path(checkpoint)) if checkpoint else None
        if done is not None and made_by and not done.endswith(made_by):
            raise MfrError(
                f"{target}: its {source} twins were made by another checkpoint than "
                f"{checkpoint}; delete the folder to generate them again"
            )
        if done is not None and done.startswith(split):
            return target
        if not made_by:
            return None
        self.log(f"generating {source} masks on {aligned} (not the {len(left_out)} tested "
                 f"identities) -> {target}")  # fmt: skip
        generate(Path(checkpoint), aligned, target, self.log, exclude=left_out)
        with atomic_write(marker, "w") as handle:
            handle.write(split + made_by)
        return target

    def training_sources(self, source: str | None) -> list[Path] | None:
        """Training folders for a cell: LFW (+ CelebA), masked by ``source`` when given."""
        datasets = ["lfw"] + (["celeba"] if self.has_celeba() else [])
        if source is None:
            return [self.aligned(name) for name in datasets]
        folders = [self.masked(name, source) for name in datasets]
        return None if any(f is None for f in folders) else folders

    # -- splits -----------------------------------------------------------------------------
    def _lfw_identities(self, dataset: str = "lfw") -> dict[str, list[str]]:
        """Full-face file names (sorted) of each identity of the aligned ``dataset``."""
        from mfr.data.dataset import load_index

        index = load_index(self.aligned(dataset))
        images: dict[str, list[str]] = {}
        for path, identity, domain in zip(index.paths, index.identities, index.domains):
            if int(domain) == 0:
                images.setdefault(identity, []).append(Path(path).name)
        return {name: sorted(files) for name, files in images.items()}

    def _heldout_pairs(self) -> list[tuple[str, str]]:
        """(dataset, identity) held out: >= 3 aligned images, never an MFR2-overlap identity,
        the first ``heldout_identities`` by a stable hash of the name over ``heldout_sources``."""
        excluded = self.mfr2_overlap()
        candidates = [
            (dataset, name)
            for dataset in self.config.heldout_sources
            if dataset == "lfw" or self.has_celeba()
            for name, files in self._lfw_identities(dataset).items()
            if len(files) >= 3 and name not in excluded
        ]
        candidates.sort(key=lambda item: (_stable_order(item[1]), item[0]))
        return sorted(candidates[: self.config.heldout_identities])

    def heldout(self) -> list[str]:
        """Identities with >= 3 aligned images, chosen by a stable hash, never trained on."""
        return sorted({name for _, name in self._heldout_pairs()})

    def mfr2_overlap(self) -> set[str]:
        path = self._shared(self.config.exclude)
        if not path.is_file():
            return set()
        lines = read_text(path, "exclude list").splitlines()
        return {line.strip() for line in lines if line.strip()}

    def untrained_identities(self) -> list[str]:
        """MFR2-overlap identities plus the held-out ones, sorted: what no cell may train on."""
        return sorted(self.mfr2_overlap() | set(self.heldout()))

    def train_exclude_file(self) -> Path:
        """:meth:`untrained_identities`, one per line, for ``mfr train``'s ``exclude``."""
        names = self.untrained_identities()
        target = self.root / "splits" / f"{self.lfw_name()}-train-exclude.txt"
        with atomic_write(target, "w") as handle:
            handle.write("".join(f"{name}\n" for name in names))
        return target

    def synthetic_test(self, method: str) -> Path:
        """Manifest of the held-out identities' test: masked twins (``method``) as probes,
        full faces as gallery (see ``heldout_gallery_images``)."""
        config = self.config
        pairs = self._heldout_pairs()
        tag = ""
        if (
            config.heldout_sources != ["lfw"]
            or config.heldout_max_images
            or (config.heldout_gallery_images)
        ):
            tag = (f"-{'+'.join(config.heldout_sources)}-h{config.heldout_identities}"
                   f"-max{config.heldout_max_images}-g{config.heldout_gallery_images}")  # fmt: skip
        target = self.root / "splits" / f"{self.lfw_name()}-heldout{tag}-{method}.csv"
        rows = []
        for dataset in dict.fromkeys(d for d, _ in pairs):
            masked, identities = self.masked(dataset, method), self._lfw_identities(dataset)
            for _, name in (p for p in pairs if p[0] == dataset):
                for file, probe in heldout_rows(identities[name], config):
                    domain = MASKED if probe else FULL
                    path = masked / image_relpath(name, domain, file)
                    rows.append((str(path.resolve()), name, domain))
        return write_manifest_rows(target, rows)


def heldout_rows(files: list[str], config: ExperimentConfig) -> list[tuple[str, bool]]:
    """(file, is_probe) of one held-out identity's sorted full-face ``files``: at most
    ``heldout_max_images``; the first ``heldout_gallery_images`` are gallery and the rest
    probes, or (0) even positions probes and odd ones gallery."""
    if config.heldout_max_images > 0:
        files = files[: config.heldout_max_images]
    gallery = config.heldout_gallery_images
    if gallery > 0:
        return [(file, position >= gallery) for position, file in enumerate(files)]
    return [(file, position % 2 == 0) for position, file in enumerate(files)]
