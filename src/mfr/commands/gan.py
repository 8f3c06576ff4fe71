"""``mfr gan train|generate``: the Identity Aware Mask GAN (IAMGAN) and its ablations."""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    config: Path = typer.Option(None, "--config", help="YAML options (src/mfr/configs/gan-*)."),
    overrides: list[str] = typer.Option(None, "--set", help="Override an option: key=value."),
    resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt."),
) -> None:
    """Train an IAMGAN variant (full, no_ip = plain CycleGAN, no_rec, no_cls).

    Writes OUT/last.pt (resumable), OUT/history.json and sample grids in OUT/samples/
    (rows: input, generated, segmenter map).
    """
    import logging

    from mfr.train.gan_run import train_gan
    from mfr.train.iamgan import GanOptions
    from mfr.train.options import load_options

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    opts = load_options(GanOptions, config, overrides)
    result = train_gan(opts, resume=resume)
    typer.echo(f"trained to step {result['step']}; checkpoint {result['out']}/last.pt")


def generate(
    src: Path = typer.Argument(..., help="Full-face dataset SRC/<identity>/<image>."),
    dst: Path = typer.Argument(..., help="Output dataset (the `mfr mask` layout)."),
    model: Path = typer.Option(..., "--model", help="IAMGAN checkpoint (last.pt)."),
    batch_size: int = typer.Option(16, "--batch-size"),
    composite: bool = typer.Option(
        False, "--composite", help="Keep source pixels outside the generated mask region."
    ),
    min_images: int = typer.Option(
        1, "--min-images", help="Only identities with at least this many full faces."
    ),
) -> None:
    """Generate a masked twin of every full face; resumes where a previous run stopped."""
    from mfr.io import on_interrupt, resume_note
    from mfr.train.gan_generate import generate_dataset

    on_interrupt(lambda: resume_note(dst))
    counts = generate_dataset(model, src, dst, batch_size, composite, min_images=min_images)
    typer.echo(
        f"{dst}: generated {counts['generated']}, kept {counts['existing']} existing, "
        f"skipped {counts['skipped']} unreadable"
    )


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        help="IAMGAN: train masked-face generators, generate masked twins.", no_args_is_help=True
    )
    app.add_typer(sub, name="gan")
    sub.command("train")(train)
    sub.command("generate")(generate)
