"""Imports run one way through the house (README, "Layout"; docs/development.md).

Every module under ``src/mfr`` is parsed with ``ast`` and each of its imports, lazy ones
inside functions included, is checked against the layers, bottom to top::

    errors, io, paths -> nets, losses, eval, data -> align, masking -> embedders, gallery
    -> api, distill -> train -> experiments, export, report -> commands -> cli

A module may import its own package, any lower layer, and another package of its own layer
as long as that package does not import it back (no cycle). Only ``cli.py`` and
``commands/`` may import ``mfr.commands`` or ``mfr.cli``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mfr"

LAYERS = [
    {"errors", "io", "paths"},
    {"nets", "losses", "eval", "data"},
    {"align", "masking"},
    {"embedders", "gallery"},
    {"api", "distill"},
    {"train"},
    {"experiments", "export", "report"},
    {"commands"},
    {"cli"},
]
LAYER = {package: number for number, names in enumerate(LAYERS) for package in names}

#: Known violations, each with the branch that removes it.
ALLOWED: set[tuple[str, str]] = set()


def _package(module: str) -> str | None:
    """The top-level part of ``mfr.<package>...``, or None for other modules and ``mfr``."""
    parts = module.split(".")
    return parts[1] if parts[0] == "mfr" and len(parts) > 1 else None


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = ["mfr", *path.relative_to(SRC).with_suffix("").parts]
    if here[-1] == "__init__":
        here = here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + (path.name == "__init__.py")]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.append(module)
            # `from mfr import commands` imports the package mfr.commands
            if module == "mfr":
                found.extend(f"mfr.{alias.name}" for alias in node.names)
    return found


def _modules() -> list[tuple[str, str, str]]:
    """``(file relative to src/mfr, its package, imported module)`` for every mfr import."""
    rows = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        own = relative.split("/")[0].removesuffix(".py")
        if own == "__init__":  # the package root only re-exports the public API lazily
            continue
        for module in _imports(path):
            target = _package(module)
            if target is not None:
                rows.append((relative, own, module))
    return rows


def test_every_package_has_a_layer():
    packages = {p.name.removesuffix(".py") for p in SRC.iterdir() if not p.name.startswith("_")}
    packages = {
        p for p in packages if (SRC / p / "__init__.py").is_file() or (SRC / f"{p}.py").is_file()
    }
    assert packages - {"__pycache__"} <= set(LAYER), sorted(packages - set(LAYER))


def test_only_the_cli_imports_commands():
    wrong = [
        f"{file} imports {module}"
        for file, own, module in _modules()
        if _package(module) in {"commands", "cli"}
        and own not in {"commands", "cli"}
        and (file, module) not in ALLOWED
    ]
    assert not wrong, "\n".join(wrong)


def test_no_lower_layer_imports_a_higher_one():
    wrong = [
        f"{file} (layer {LAYER[own]}) imports {module} (layer {LAYER[_package(module)]})"
        for file, own, module in _modules()
        if LAYER[_package(module)] > LAYER[own] and (file, module) not in ALLOWED
    ]
    assert not wrong, "\n".join(wrong)


def test_no_cycle_between_packages_of_one_layer():
    edges: dict[tuple[str, str], str] = {}
    for file, own, module in _modules():
        target = _package(module)
        if target != own and LAYER[target] == LAYER[own]:
            edges.setdefault((own, target), f"{file} imports {module}")
    cycles = [
        f"{edges[(a, b)]} and {edges[(b, a)]}"
        for (a, b) in sorted(edges)
        if a < b and (b, a) in edges
    ]
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_lazy_imports():
    """Imports inside functions count: ``gallery/store.py`` imports ``mfr.io`` lazily too."""
    lazy = "mfr.io"
    source = (SRC / "gallery" / "store.py").read_text(encoding="utf-8")
    assert "    from mfr.io import file_kind" in source
    assert _imports(SRC / "gallery" / "store.py").count(lazy) >= 2


#: Known module cycles inside a package: detect.py picks MediaPipe's finder from mesh.py
#: (lazily) while mesh.py uses detect's box IoU and HOG boxes.
ALLOWED_MODULE_CYCLES = {("mfr.align.detect", "mfr.align.mesh")}


def test_no_two_modules_of_one_package_import_each_other():
    """``experiments/config.py`` and ``model_build.py`` did (the shipped-config folder came
    from config.py); ``masking/designs.py`` and ``template.py`` did before the registry."""
    edges = set()
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        if len(parts) < 2 or parts[-1] == "__init__":
            continue
        here = ".".join(("mfr", *parts))
        edges.update((here, module) for module in _imports(path))
    cycles = [
        f"{a} <-> {b}"
        for a, b in sorted(edges)
        if a < b
        and (b, a) in edges
        and a.split(".")[1] == b.split(".")[1]
        and (a, b) not in ALLOWED_MODULE_CYCLES
    ]
    assert not cycles, "\n".join(cycles)
