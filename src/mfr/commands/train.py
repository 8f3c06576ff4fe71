"""``mfr train``: train a face recognizer (backbone + loss) on P x K batches."""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    config: Path = typer.Option(
        None, "--config", "-c", help="YAML config (see src/mfr/configs/recognizer-*.yaml)."
    ),
    overrides: list[str] = typer.Option(
        None,
        "--set",
        help="Override an option: key=value (repeatable), e.g. --set steps=200 "
        "--set loss=dcr --set loss_options.gamma=0.5.",
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="Run folder (default runs/train/<config name>)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue from OUT/last.pt (bit-identical on CPU)."
    ),
    show_config: bool = typer.Option(
        False, "--show-config", help="Print the resolved config as YAML and exit."
    ),
) -> None:
    """Train a recognizer: Adam, lr x0.1 at 50 % and 75 % of the steps (paper §5.2).

    Writes OUT/metrics.jsonl, OUT/last.pt (every checkpoint_every steps) and OUT/final.pt.
    Under torchrun every rank trains on its own identities (DDP; NCCL on GPUs, gloo on
    CPU) and rank 0 writes the outputs.
    """
    import yaml

    from mfr.train.config import load_config
    from mfr.train.recognizer import train as run_training

    resolved = load_config(config, overrides or [])
    if show_config:
        typer.echo(yaml.safe_dump(resolved.to_dict(), sort_keys=False).rstrip())
        return
    if out is None:
        out = Path("runs/train") / (config.stem if config else "default")
    if not resume and (out / "last.pt").exists():
        from mfr.errors import MfrError

        raise MfrError(
            f"{out}: already holds a training run (last.pt); use --resume to continue "
            "it or another --out"
        )
    from mfr.io import on_interrupt

    last = out / "last.pt"
    on_interrupt(lambda: f"checkpoint saved in {last}; continue with the same command and "
                 "--resume" if last.is_file() else "no checkpoint saved yet")  # fmt: skip
    run_training(resolved, out, resume=resume, log=typer.echo)


def register(app: typer.Typer) -> None:
    app.command()(train)
