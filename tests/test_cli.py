"""One CLI vocabulary (issue 15 item 4): every subcommand's parser walked, its help and defaults
checked; `radz --help` lists every command and mode; bad --device / --workers refused; `radz
bench` without torch names the extra to install. `radz serve` is checked by its own tests."""

from __future__ import annotations

import argparse
import importlib

import pytest

from blocked_imports import run_blocked

# (module, parser factory) of every subcommand and mode except `radz serve`.
PARSERS = {
    "screen": ("radz_engine.cli.screen", "build_parser"),
    "demo": ("radz_engine.cli.demo", "build_parser"),
    "preprocess": ("radz_engine.cli.preprocess", "build_parser"),
    "similar": ("radz_engine.cli.similar", "build_parser"),
    "bundle info": ("radz_engine.cli.bundle", "build_info_parser"),
    "eval --bundle": ("radz_engine.cli.bundle_eval", "build_parser"),
    "train": ("radz_train.cli", "build_train_parser"),
    "train dkam-generate": ("radz_train.cli", "build_dkam_parser"),
    "eval": ("radz_train.cli", "build_eval_parser"),
    "synth": ("radz_train.data.synth_cli", "build_parser"),
    "export": ("radz_export.cli", "build_parser"),
    "quantize": ("radz_export.quantize", "build_parser"),
    "bench": ("radz_bench.cli", "_throughput_parser"),
    "bench load": ("radz_bench.cli", "_load_parser"),
}
# The one name for each thing; the other spellings are hidden aliases at most.
VOCABULARY = {"--bundle", "--out", "--device", "--batch-size", "--workers", "--threads", "--quiet"}
OLD_SPELLINGS = {"--no-progress", "--batch", "--max-batch", "--dicom-size", "--num-workers", "--nthreads", "--output"}


def _parser(name: str) -> argparse.ArgumentParser:
    module, factory = PARSERS[name]
    return getattr(importlib.import_module(module), factory)()


def _visible(parser: argparse.ArgumentParser):
    return [a for a in parser._actions if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_flag_has_help_and_shows_its_default(name):
    parser = _parser(name)
    assert issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter), name
    description = (parser.description or "").rstrip()
    assert description and description[-1] in ".)`:", f"radz {name}: description cut mid-sentence: {description!r}"
    formatter = parser._get_formatter()
    for action in _visible(parser):
        flag = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"radz {name} {flag}: no help"
        shown = formatter._get_help_string(action)
        if action.option_strings and action.default not in (None, False) and not action.required:
            assert "default" in shown, f"radz {name} {flag}: default {action.default!r} not shown"
    text = parser.format_help()
    for old in OLD_SPELLINGS:
        assert old not in text.split(), f"radz {name}: shows the old spelling {old}"


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_one_vocabulary(name):
    """Shared flags have the shared checks; --size is always an image side in pixels."""
    parser = _parser(name)
    by_flag = {flag: a for a in parser._actions for flag in a.option_strings}
    if "--device" in by_flag and by_flag["--device"].type is not None:
        with pytest.raises(argparse.ArgumentTypeError, match="cuda"):
            by_flag["--device"].type("gpu")
    if "--workers" in by_flag:
        with pytest.raises(argparse.ArgumentTypeError, match=">= 0"):
            by_flag["--workers"].type("-1")
    if "--threads" in by_flag:
        with pytest.raises(argparse.ArgumentTypeError, match=">= 1"):
            by_flag["--threads"].type("0")
    if "--size" in by_flag and by_flag["--size"].help != argparse.SUPPRESS:
        assert "side" in by_flag["--size"].help and "pixels" in by_flag["--size"].help
    if "--no-progress" in by_flag:  # the old spelling still works, as --quiet
        assert by_flag["--no-progress"].dest == "quiet" and by_flag["--no-progress"].help == argparse.SUPPRESS
    if "--batch" in by_flag or "--max-batch" in by_flag:
        assert all(by_flag[f].dest == "batch_size" for f in ("--batch", "--max-batch") if f in by_flag)


def test_old_spellings_still_parse():
    args = _parser("synth").parse_args(["--out", "x", "--n", "2", "--no-progress", "--dicom-size", "64"])
    assert args.quiet and args.dicom_size == 64
    args = _parser("bench").parse_args(["--batch", "1,4"])
    assert args.batch_size == [1, 4] and args.device == ["cpu"]
    assert _parser("bench load").parse_args(["--max-batch", "8", "--dicom-size", "64"]).batch_size == 8
    assert _parser("preprocess").parse_args(["a", "--out", "o.npy", "--size", "96"]).input_size == 96
    assert _parser("demo").parse_args(["--dicom-size", "256"]).size == 256


def test_radz_help_lists_every_command_and_mode(capsys):
    from radz_engine.cli import COMMANDS, main

    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for name in COMMANDS:
        assert f"    {name}" in text
    for mode in ("radz train dkam-generate", "radz eval --bundle", "radz bench load"):
        assert mode in text


@pytest.mark.parametrize("argv", [["screen", "--help"], ["train", "--help"], ["eval", "--bundle", "B", "--help"]])
def test_subcommand_help_exits_zero(argv, capsys):
    from radz_engine.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "(default" in capsys.readouterr().out


def test_bench_without_torch_names_the_extra():
    done = run_blocked(
        """
        from radz_engine.cli import main
        raise SystemExit(main(["bench", "--reference", "none"]))
        """
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'radz-engine[train]'" in done.stderr and "Traceback" not in done.stderr


def test_train_preset_needs_no_config(tmp_path, capsys):
    """`radz train --preset tiny --data DIR`: the shipped settings, KEY=VALUE overrides on top."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import json

    from radz_engine.cli import main

    data = tmp_path / "data"
    assert main(["synth", "--out", str(data), "--n", "16", "--size", "64", "--quiet"]) == 0
    with pytest.raises(SystemExit):
        main(["train", "--preset", "tiny"])  # no --data
    assert "--preset needs --data" in capsys.readouterr().err
    run = tmp_path / "run"
    argv = ["train", "--preset", "tiny", "--data", str(data), "--out", str(run), "max_steps=1", "batch_size=8"]
    assert main([*argv, "--threads", "1", "--quiet"]) == 0
    config = json.loads((run / "train_config.json").read_text())
    assert config["max_steps"] == 1 and config["batch_size"] == 8 and config["threads"] == 1
    assert config["learning_rates"]["vision"] == 2e-3 and (run / "final").exists()


def test_synth_without_a_terminal_and_interrupted(tmp_path):
    """No terminal: plain progress lines (no carriage returns); SIGTERM: exit 130 with a
    labels.csv that lists exactly the images written."""
    import csv
    import os
    import signal
    import subprocess
    import sys
    import time

    env = dict(os.environ)  # the installed package (the source tree has no built extension in CI)
    out = tmp_path / "synth"
    cmd = [sys.executable, "-m", "radz_engine.cli", "synth", "--out", str(out), "--n", "100000", "--size", "64"]
    proc = subprocess.Popen(
        [*cmd, "--progress-every", "0.2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list((out / "images").glob("*.png"))) < 20:
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "\r" not in err and "radz synth: " in err and "/100000 images" in err
    with open(out / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 20 and f"lists the {len(rows)} images written" in err
    assert all((out / row["path"]).is_file() for row in rows)


@pytest.mark.slow  # two training processes (~30 s on 2 cores)
def test_train_without_a_terminal_then_sigterm_saves_and_resumes(tmp_path):
    """No terminal: plain progress lines. SIGTERM: stop between two steps, save a checkpoint,
    print how to resume; --resume continues from it."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import os
    import signal
    import subprocess
    import sys

    from radz_engine.cli import main

    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the installed package, not the source tree
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["synth", "--out", str(data), "--n", "16", "--size", "64", "--quiet"]) == 0
    train = [sys.executable, "-m", "radz_engine.cli", "train", "--preset", "tiny", "--data", str(data)]
    train += ["--out", str(run), "--threads", "1", "batch_size=4", "log_every=1"]
    proc = subprocess.Popen(
        [*train, "max_steps=100000", "--progress-every", "0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stderr:  # wait for two plain progress lines, then stop it
        lines.append(line)
        if sum("radz train: step " in x for x in lines) >= 2:
            break
    proc.send_signal(signal.SIGTERM)
    _, tail = proc.communicate(timeout=120)
    err = "".join(lines) + tail
    assert proc.returncode == 130, err
    saved = sorted(run.glob("checkpoint-*"))
    assert len(saved) == 1 and "\r" not in err and "resume with: radz train" in err
    step = int(saved[0].name.split("-")[1])
    assert step >= 2
    done = subprocess.run(
        [*train, f"max_steps={step + 1}", "--resume", str(saved[0]), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (run / f"checkpoint-{step + 1}").is_dir() and (run / "final").resolve().name == f"checkpoint-{step + 1}"


def test_progress_without_a_terminal_prints_plain_lines_only_when_asked(capsys):
    """radz bench (and any caller) without a terminal: plain lines every N seconds, no \\r bars."""
    from radz_engine.runtime.progress import progress

    assert list(progress(range(5), total=5, desc="quiet")) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""  # not asked: silent, as before
    assert list(progress(range(5), total=5, desc="radz bench", unit="config", plain_every=0.0)) == [0, 1, 2, 3, 4]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 5 and lines[-1].startswith("radz bench: 5/5 config, ") and "\r" not in "".join(lines)
    list(progress(range(3), total=3, desc="radz bench", plain_every=3600.0))
    lines = capsys.readouterr().err.splitlines()  # a long interval: only the closing line
    assert len(lines) == 1 and lines[0].startswith("radz bench: 3/3 img, ")


def test_version_reports_what_the_build_can_do(capsys):
    """`radz --version`: the version, then the build (core, FAISS, similar-case search, decoders)."""
    import radz_engine
    from radz_engine.cli import main

    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    info = radz_engine.build_info()
    assert out.startswith(f"radz-engine {radz_engine.__version__}\n")
    assert f"similar-case search: {info['similar_search']}" in out and "DICOM decoders: rle:" in out
    assert info["similar_search"] in ("faiss", "numpy")
