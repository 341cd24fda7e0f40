"""The README runs as written (issue 15 item 3).

Its Python blocks run in order, each as a script (`python snippet.py`, so the process pool's
`if __name__ == "__main__":` guard is exercised) in one folder prepared by the README's own
`radz synth --out studies ...` line; its `radz screen studies/`, `radz preprocess studies/`,
`radz index build` and `radz similar` lines run for real (in README order); every other
`radz ...` line is parsed by its subcommand's parser, so no
README command names a flag that does not exist. Links to files inside the repository resolve.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.S | re.M)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
COMMANDS = [
    part.strip()
    for lang, code in BLOCKS
    if lang == "bash"
    for line in code.splitlines()
    for part in line.split("#", 1)[0].split("&&")
    if part.strip().split(" ", 1)[0].endswith("radz")
]
# Lines that run for real (fast, on the studies/ folder); the rest are parsed only.
RUN = (
    "radz synth --out studies",
    "radz screen studies/",
    "radz preprocess studies/",
    "radz index build embeddings.jsonl",
    "radz similar studies/",
)
PARSERS = {
    "screen": ("radz_engine.cli.screen", "build_parser"),
    "demo": ("radz_engine.cli.demo", "build_parser"),
    "preprocess": ("radz_engine.cli.preprocess", "build_parser"),
    "serve": ("radz_engine.cli.serve", "build_parser"),
    "index": ("radz_engine.cli.index", "build_parser"),
    "similar": ("radz_engine.cli.similar", "build_parser"),
    "eval --bundle": ("radz_engine.cli.bundle_eval", "build_parser"),
    "train dkam-generate": ("radz_train.cli", "build_dkam_parser"),
    "train": ("radz_train.cli", "build_train_parser"),
    "eval": ("radz_train.cli", "build_eval_parser"),
    "synth": ("radz_train.data.synth_cli", "build_parser"),
    "export": ("radz_export.cli", "build_parser"),
    "quantize": ("radz_export.quantize", "build_parser"),
    "bench load": ("radz_bench.cli", "_load_parser"),
    "bench": ("radz_bench.cli", "_throughput_parser"),
}


def _argv(command: str) -> list[str]:
    """`radz ...` as argv after "radz", optional `[--flag]` parts dropped."""
    return shlex.split(re.sub(r"\[[^\]]*\]", "", command))[1:]


def _env() -> dict:
    # The installed package, as a user runs it (the source tree has no built extension in CI).
    return {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with the README's phantom studies in it, made by the README's own line."""
    from radz_engine.cli import main

    folder = tmp_path_factory.mktemp("readme")
    synth = [c for c in COMMANDS if c.startswith(RUN[0])]
    assert synth, "the README lost its `radz synth --out studies` line"
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(_argv(synth[0])) == 0
    finally:
        os.chdir(cwd)
    return folder


def test_readme_has_runnable_blocks():
    assert len(PYTHON) >= 3 and any(c.startswith(RUN[1]) for c in COMMANDS)
    assert "../shared" not in README  # the design doc lives in the repository now


@pytest.mark.parametrize("index", range(len(PYTHON)), ids=lambda i: f"python-block-{i}")
def test_python_block_runs_as_a_script(index, workdir):
    code = PYTHON[index]
    if "radz_train.model" in code:
        pytest.importorskip("torch")
        pytest.importorskip("transformers")
    script = workdir / f"readme_block_{index}.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, "-W", "error", script.name],
        cwd=workdir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"README python block {index} failed:\n{code}\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith(RUN[1:])])
def test_fast_commands_run(command, workdir, capsys):
    from radz_engine.cli import main

    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        assert main([*_argv(command), *(["--workers", "0"] if command.startswith("radz screen") else [])]) == 0, command
    finally:
        os.chdir(cwd)


def _parser_for(argv: list[str]):
    for name, (module, factory) in PARSERS.items():
        words = name.split()
        if argv[: len(words)] == words or (words[1:] == ["--bundle"] and argv[0] == words[0] and "--bundle" in argv):
            if importlib.util.find_spec(module.split(".")[0]) is None:
                pytest.skip(f"{module} is not installed")
            consumed = 1 if words[1:] == ["--bundle"] else len(words)
            return getattr(importlib.import_module(module), factory)(), argv[consumed:]
    raise AssertionError(f"README command {argv} is not a radz subcommand")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_parses(command):
    """Each `radz ...` line of the README names a subcommand and flags that exist."""
    argv = _argv(command)
    if argv[0] == "serve" and importlib.util.find_spec("pynetdicom") is None:
        pytest.skip("serve extra not installed")
    parser, rest = _parser_for(argv)
    try:
        parser.parse_args(rest)
    except SystemExit as error:
        raise AssertionError(f"README command does not parse: {command}") from error


def test_links_resolve():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to a missing file: {target}"
