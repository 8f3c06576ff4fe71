"""``mfr data info`` and ``mfr data pairs``: inspect a dataset, convert benchmark pairs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer


class Protocol(StrEnum):
    lfw = "lfw"
    mfr2 = "mfr2"


def _print_info(info: dict) -> None:
    echo = typer.echo
    echo(f"dataset      {info['root']} ({info['layout']} layout)")
    echo(f"identities   {info['identities']}")
    echo(f"images       {info['images']}  (full {info['full']}, masked {info['masked']})")
    echo(
        f"identities with both domains {info['identities_with_both']}  "
        f"(full only {info['identities_full_only']}, "
        f"masked only {info['identities_masked_only']})"
    )
    if info["excluded_images"]:
        echo(f"excluded     {info['excluded_images']} images of excluded identities")
    echo(f"non-image files skipped {info['non_image_files_skipped']}")
    for path in info["skipped_files"][:20]:
        echo(f"  skipped {path}")
    if len(info["skipped_files"]) > 20:
        echo(f"  ... and {len(info['skipped_files']) - 20} more (see --json)")
    if info["missing_files"]:
        echo(f"listed but missing {len(info['missing_files'])}")
        for path in info["missing_files"]:
            echo(f"  missing {path}")
    if info["bad_files"] is None:
        echo("images not decoded (--no-decode)")
        return
    echo(f"bad images   {len(info['bad_files'])} of {info['images']}")
    for bad in info["bad_files"]:
        echo(f"  bad {bad['path']}: {bad['reason']}")


def info_command(
    root: Path = typer.Argument(..., help="Dataset folder, manifest CSV, MFR2 or LFW root."),
    decode: bool = typer.Option(
        True, "--decode/--no-decode", help="Decode every image to find bad files."
    ),
    exclude: Path | None = typer.Option(
        None, "--exclude", help="File of identities to leave out (one per line)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead."),
) -> None:
    """Identities, images per domain, identities with both domains, skipped and bad files."""
    import json

    from mfr.data.info import dataset_info

    info = dataset_info(root, decode=decode, exclude=exclude, progress=not as_json)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        _print_info(info)


def pairs_command(
    protocol: Protocol = typer.Argument(..., help="lfw (meta/pairs.csv) or mfr2 (pairs.txt)."),
    embeddings: Path = typer.Argument(..., help="Embeddings .npz of the benchmark images."),
    out: Path = typer.Option(..., "--out", help="Pairs CSV to write (a,b,same)."),
    root: Path | None = typer.Option(
        None, "--root", help="Benchmark folder (default: DATA/lfw or DATA/mfr2-dev)."
    ),
    pairs_file: Path | None = typer.Option(
        None, "--pairs-file", help="Another pairs file in the same format."
    ),
    domain_a: int | None = typer.Option(
        None, "--domain-a", min=0, max=1, help="Match side a only in domain 0 or 1."
    ),
    domain_b: int | None = typer.Option(
        None, "--domain-b", min=0, max=1, help="Match side b only in domain 0 or 1."
    ),
) -> None:
    """Convert the LFW or MFR2 pair protocol to a pairs CSV for ``mfr eval --pairs``."""
    from mfr.data.benchmarks import pairs_to_csv, read_lfw_pairs, read_mfr2_pairs
    from mfr.paths import data_root

    if protocol is Protocol.lfw:
        pairs = read_lfw_pairs(root or data_root() / "lfw", pairs_file)
    else:
        pairs = read_mfr2_pairs(root or data_root() / "mfr2-dev", pairs_file)
    result = pairs_to_csv(pairs, embeddings, out, domain_a=domain_a, domain_b=domain_b)
    for number, reason in result.missing[:10]:
        typer.echo(f"left out pair {number}: {reason}", err=True)
    if len(result.missing) > 10:
        typer.echo(f"... and {len(result.missing) - 10} more pairs left out", err=True)
    typer.echo(f"{out}: {result.summary()}")


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        help="Inspect datasets and convert benchmark pair lists.", no_args_is_help=True
    )
    app.add_typer(sub, name="data")
    sub.command("info")(info_command)
    sub.command("pairs")(pairs_command)
