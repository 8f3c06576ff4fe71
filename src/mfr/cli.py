"""The ``mfr`` command. Each module in ``mfr.commands`` adds its commands via ``register(app)``."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from mfr.errors import MfrError
from mfr.io import interrupt_note, on_interrupt, printable_streams

app = typer.Typer(
    name="mfr",
    help="Masked face recognition: align, mask, train, embed, evaluate, identify.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Masked face recognition: align, mask, train, embed, evaluate, identify."""


def _register_commands() -> None:
    import mfr.commands as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"mfr.commands.{info.name}")
        module.register(app)


_register_commands()


def _interrupted(error: BaseException | None) -> bool:
    """Whether ``error`` (typer's exit) was caused by a KeyboardInterrupt (Ctrl-C)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; an ``MfrError`` becomes one plain line on stderr and exit status 2. An
    interrupt (Ctrl-C) is one line, ``mfr: interrupted; <what was kept>`` (see
    :func:`mfr.io.on_interrupt`), and exit status 130."""
    printable_streams(sys.stdout, sys.stderr)  # file names that are not UTF-8: \xNN
    on_interrupt(None)
    try:
        app(args=argv)
    except KeyboardInterrupt:
        typer.echo(f"mfr: interrupted; {interrupt_note()}", err=True)
        return 130
    except MfrError as error:
        typer.echo(f"mfr: error: {error}", err=True)
        return 2
    except OSError as error:  # a file error no command anticipated: still one line
        where = f"{error.filename}: " if error.filename else ""
        typer.echo(f"mfr: error: {where}{error.strerror or error}", err=True)
        return 2
    except SystemExit as stop:  # typer ends every run with sys.exit(code)
        code = stop.code
        if code == 130 and _interrupted(stop):  # typer turns Ctrl-C into a silent exit 130
            typer.echo(f"mfr: interrupted; {interrupt_note()}", err=True)
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
