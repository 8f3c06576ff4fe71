"""``mfr model build`` and ``mfr model list``: the named models every command can use."""

from __future__ import annotations

from pathlib import Path

import typer


def build(
    data: list[Path] = typer.Option(
        None,
        "--data",
        help="Identity folders <identity>/<photos> to train on (repeat the option); "
        "default: the LFW and CelebA copies under MFR_DATA.",
    ),
    steps: int = typer.Option(
        None, "--steps", min=1, help="Training steps (default: the recipe's, 1200)."
    ),
    warmup: int = typer.Option(
        None, "--warmup", min=0, help="Head warm-up steps, within --steps (default 100)."
    ),
    name: str = typer.Option("mfr-masked", "--name", help="Install under this name."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    heldout: int = typer.Option(
        100, "--heldout", min=2, help="Identities held out to test and calibrate on."
    ),
    identities: int = typer.Option(
        0, "--identities", min=0, help="Only the N identities with most photos per folder (0: all)."
    ),
    max_per_identity: int = typer.Option(
        0, "--max-per-identity", min=0, help="At most N photos per identity (0: all)."
    ),
    work: Path = typer.Option(Path("runs/data"), "--work", help="Aligned/masked data cache."),
    runs: Path = typer.Option(Path("runs/models"), "--runs", help="Training runs folder."),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes."),
    overrides: list[str] = typer.Option(
        None, "--set", help="Override a recipe option (src/mfr/configs/model-masked.yaml)."
    ),
) -> None:
    """Fine-tune the masked-face model with the best recipe (dlib's weights, DCR, synthetic
    masked twins in two styles, distillation, head warm-up), test and calibrate it on
    held-out identities, and install it with its provenance under the model home."""
    from mfr.embedders.registry import model_home
    from mfr.experiments.model_build import BuildOptions, build_model, default_data

    options = BuildOptions(
        data=list(data) if data else default_data(), name=name, steps=steps,
        head_warmup_steps=warmup, seed=seed, heldout=heldout, identities=identities,
        max_per_identity=max_per_identity, work=work, runs=runs, workers=workers,
        overrides=list(overrides or []),
    )  # fmt: skip
    record = build_model(options, log=lambda m: typer.echo(m, err=True))
    typer.echo(
        f"{name}: threshold {record['threshold']:.4f} ({record['operating_point']}); "
        f"held-out Rank-1 {record['heldout']['rank1']:.1f}, mAP {record['heldout']['mAP']:.1f}"
        f"; installed in {model_home() / 'models' / name}"
    )


def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the installed models with their provenance, the built-in ones, and the
    default model."""
    import json

    from mfr.embedders.registry import BUILTIN, default_model, installed_models, model_home

    default = default_model()
    models = installed_models()
    if as_json:
        payload = {
            "home": str(model_home()),
            "default": default,
            "installed": [{"name": m.name, **m.record} for m in models],
            "builtin": {
                k: {"threshold": t.value, "operating_point": t.operating_point}
                for k, t in BUILTIN.items()
            },
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(f"model home: {model_home()}")
    for model in models:
        r = model.record
        held = r.get("heldout", {})
        mark = " (default)" if model.name == default else ""
        typer.echo(f"{model.name}{mark}: built {r.get('built')} at commit {r.get('commit')}")
        typer.echo(
            f"  {r.get('steps')} steps ({r.get('head_warmup_steps')} head warm-up), seed "
            f"{r.get('seed')}, on {', '.join(r.get('data', []))} "
            f"({r.get('training_images', {}).get('images')} images)"
        )
        typer.echo(
            f"  held-out: Rank-1 {held.get('rank1')}, mAP {held.get('mAP')} "
            f"({held.get('probes')} masked probes)"
        )
        typer.echo(f"  threshold {r.get('threshold')}: {r.get('operating_point')}")
    for key, threshold in BUILTIN.items():
        mark = " (default)" if key == default else ""
        typer.echo(f"{key}{mark}: built-in, no training; threshold {threshold.value:.4f}: "
                   f"{threshold.operating_point}")  # fmt: skip


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Build and list named models (the model home).", no_args_is_help=True)
    app.add_typer(sub, name="model")
    sub.command()(build)
    sub.command("list")(list_)
