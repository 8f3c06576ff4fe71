"""End-to-end evaluation: which masked probes of the evaluated dataset never got an embedding.

The contract (design.md, "decisions and intervals"): a masked probe of the evaluated dataset
that could not be aligned or embedded counts as a miss (no rank, AP 0); ``num_probes`` counts
it and the JSON says how many there were (``failed_probes``).

A source image and an embedding are the same face when identity, domain and file stem agree
(``mfr align`` keeps the stem and changes the extension to .png).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath

from mfr.errors import MfrError
from mfr.eval.embeddings import FULL, MASKED, Embeddings


@dataclass(frozen=True)
class Missing:
    """Masked probes of the dataset that the embeddings lack.

    ``failed_identities``: identity of every masked probe without an embedding whose identity
    has a full-face image in the dataset (probes of identities with no full face at all are
    "skipped" in both views). ``gallery_lost``: embedded probes whose identity has full faces
    in the dataset but none embedded (retrieval skips them; end to end they are misses).
    ``dataset_probes``: masked images of the dataset."""

    failed_identities: list[str]
    gallery_lost: int
    dataset_probes: int
    gallery_lost_identities: list[str] = field(default_factory=list)
    # per failed probe "<identity>/<file stem>", per gallery-lost probe its embeddings path
    # (same order as the identities): the keys of mfr.eval.probes
    failed_keys: list[str] = field(default_factory=list)
    lost_paths: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failed_identities)


def _key(identity: str, domain: int, path: str) -> tuple[str, int, str]:
    return identity, int(domain), PurePosixPath(path).stem


def find_missing(emb: Embeddings, dataset: list[tuple[str, int, str]], name: str) -> Missing:
    """Compare embeddings with the dataset's images, given as (identity, domain, path) rows.

    Raises ``MfrError`` when an embedding has no image in the dataset (the embeddings came
    from another dataset)."""
    source = {_key(i, d, p) for i, d, p in dataset}
    embedded = {_key(i, d, p) for i, d, p in zip(emb.identities, emb.domains.tolist(), emb.paths)}
    strangers = embedded - source
    if strangers:
        example = sorted(strangers)[0]
        raise MfrError(
            f"{emb.source}: {len(strangers)} embeddings have no image in {name} (e.g. "
            f"{example[0]}/{'masked/' if example[1] else ''}{example[2]}); give --dataset the "
            "folder the embeddings were made from"
        )
    gallery_ids = {i for i, d, _ in source if d == FULL}
    embedded_gallery = {i for i, d in zip(emb.identities, emb.domains.tolist()) if d == FULL}
    failed = sorted(
        (key[0], key[2]) for key in source - embedded if key[1] == MASKED and key[0] in gallery_ids
    )
    lost = [
        (i, str(p))
        for i, d, p in zip(emb.identities.tolist(), emb.domains.tolist(), emb.paths.tolist())
        if d == MASKED and i in gallery_ids and i not in embedded_gallery
    ]
    probes = sum(1 for _, d, _ in source if d == MASKED)
    return Missing(
        [i for i, _ in failed], len(lost), probes, [i for i, _ in lost],
        failed_keys=[f"{i}/{stem}" for i, stem in failed], lost_paths=[p for _, p in lost],
    )  # fmt: skip
