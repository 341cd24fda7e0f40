"""Imports run one way (DESIGN.md section 3): radz_bench -> radz_export -> radz_train ->
radz_engine. Checked on the AST of every module, imports inside functions included, so a lazy
import cannot hide a wrong-way dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "radz_engine": ROOT / "python" / "radz_engine",
    "radz_train": ROOT / "python" / "radz_train",
    "radz_export": ROOT / "export" / "radz_export",
    "radz_bench": ROOT / "python" / "radz_bench",
}
# What each package must never import.
FORBIDDEN = {
    "radz_engine": {"radz_train", "radz_export", "radz_bench"},
    "radz_train": {"radz_export", "radz_bench"},
    "radz_export": {"radz_bench"},
    "radz_bench": set(),
}
# The runtime's only exceptions: its command-line modules dispatch the other packages' commands,
# and the torch backend runs a training checkpoint through the exported graph's path.
EXEMPT = ("radz_engine.cli", "radz_engine.backends.torch_backend")


def module_name(path: Path, package: str) -> str:
    parts = path.relative_to(PACKAGES[package]).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((package, *parts))


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in `source`, relative ones resolved, plus
    importlib.import_module("...") calls with a constant name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    package = module.split(".")[0]
    if any(module == e or module.startswith(e + ".") for e in EXEMPT):
        return []
    return [
        f"{module}:{line} imports {name}"
        for line, name in imported_modules(source, module, is_package)
        if name.split(".")[0] in FORBIDDEN[package]
    ]


def all_modules():
    for package, folder in PACKAGES.items():
        for path in sorted(folder.rglob("*.py")):
            yield path, module_name(path, package)


def test_every_package_is_found():
    modules = [m for _, m in all_modules()]
    for package in PACKAGES:
        assert sum(m.startswith(package) for m in modules) > 3, f"no modules found for {package}"


def test_imports_run_one_way():
    found = []
    for path, module in all_modules():
        found += violations(path.read_text(), module, path.name == "__init__.py")
    assert found == [], "wrong-way imports (runtime <- training <- export <- bench):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source, module",
    [
        ("def f():\n    from radz_train.data import phantom\n", "radz_engine.runtime.engine"),
        ("import radz_export.bundle\n", "radz_engine.scoring.metrics"),
        ("from radz_export import onnx_export\n", "radz_train.zero_shot"),
        ("import importlib\nimportlib.import_module('radz_bench.cli')\n", "radz_export.cli"),
        ("from radz_train import evaluation\n", "radz_engine.io"),
    ],
)
def test_checker_catches_wrong_way_imports(source, module):
    assert violations(source, module)


def test_checker_allows_the_declared_exceptions_and_the_right_direction():
    assert not violations("from radz_train.data import phantom\n", "radz_engine.cli.demo")
    assert not violations(
        "def f():\n    from radz_export.encoders import ImageEncoder\n", "radz_engine.backends.torch_backend"
    )
    assert not violations("from radz_engine.scoring import class_scores\n", "radz_train.zero_shot")
    assert not violations("from .metrics import binary_auc\n", "radz_engine.scoring.calibration")
