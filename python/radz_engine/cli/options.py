"""One vocabulary for every `radz` subcommand: the same flag for the same thing, with the same
help, defaults shown by `--help`, and clear refusals of values that cannot work.

    --bundle DIR        a bundle folder (default: the shipped default bundle)
    --out PATH          what the command writes
    --device DEV        cpu, cuda, cuda:N or auto ("gpu" is refused: say cuda)
    --batch-size N      model batch size (>= 1)
    --workers N         processes (>= 0; 0: in this process; -1 is refused)
    --threads N         CPU threads (>= 1; default: all cores)
    --quiet             no progress bar (old spelling --no-progress still accepted)

Old spellings of renamed flags stay accepted as hidden aliases (`alias()`), so scripts keep
working while `--help` shows one name. Used by radz_train, radz_export and radz_bench too
(they may import the runtime; the runtime never imports them).
"""

from __future__ import annotations

import argparse
import re

__all__ = [
    "HelpFormatter",
    "parser",
    "device_type",
    "device_list_type",
    "workers_type",
    "positive_int",
    "add_bundle",
    "add_out",
    "add_device",
    "add_batch_size",
    "add_workers",
    "add_threads",
    "add_quiet",
    "alias",
]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after every help text (argparse's defaults formatter); descriptions keep
    their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or action.default in (None, False, argparse.SUPPRESS) or "(default" in text:
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return text + " (default: %(default)s)"
        return text


def parser(prog: str, description: str | None, **kwargs) -> argparse.ArgumentParser:
    """An ArgumentParser with the shared formatter."""
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter, **kwargs)


_DEVICE = re.compile(r"^(cpu|auto|cuda|cuda:\d+)$")


def device_type(value: str) -> str:
    """argparse type: cpu, cuda, cuda:N or auto."""
    text = str(value).strip().lower()
    if text == "gpu" or text.startswith("gpu:"):
        raise argparse.ArgumentTypeError(f"{value!r}: say 'cuda' or 'cuda:N' for a GPU (or 'auto')")
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"{value!r}: must be cpu, cuda, cuda:N or auto")
    return text


def device_list_type(value: str) -> list[str]:
    """argparse type: one device or a comma-separated list (cuda:0,cuda:1)."""
    return [device_type(v) for v in str(value).split(",") if v.strip()]


def workers_type(value: str) -> int:
    """argparse type: processes, >= 0 (0: in this process)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value}: must be >= 0 (0: in this process; leave it out for the default)")
    return number


def positive_int(value: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be >= 1")
    return number


def alias(p, old: str, dest: str, **kwargs) -> None:
    """A hidden old spelling of a flag (same dest; not shown in --help)."""
    p.add_argument(old, dest=dest, help=argparse.SUPPRESS, **kwargs)


def add_bundle(p, *, required: bool = False, help: str | None = None, **kwargs) -> None:
    p.add_argument(
        "--bundle",
        required=required,
        default=kwargs.pop("default", None),
        help=help or "bundle folder (default: the shipped default bundle)",
        **kwargs,
    )


def add_out(p, help: str, *, required: bool = False, default=None, **kwargs) -> None:
    p.add_argument("--out", required=required, default=default, help=help, **kwargs)


def add_device(p, *, default="cpu", help: str | None = None, many: bool = False) -> None:
    p.add_argument(
        "--device",
        default=default,
        type=device_list_type if many else device_type,
        help=help or "cpu, cuda, cuda:N or auto",
    )


def add_batch_size(p, *, default: int | None = 32, help: str = "model batch size", old: str | None = None) -> None:
    p.add_argument("--batch-size", type=positive_int, default=default, help=help)
    if old:
        alias(p, old, "batch_size", type=positive_int)


def add_workers(p, *, default: int | None = None, help: str = "processes (0: in this process)") -> None:
    p.add_argument("--workers", type=workers_type, default=default, help=help)


def add_threads(p, *, help: str = "CPU threads (default: all cores)") -> None:
    p.add_argument("--threads", type=positive_int, default=None, help=help)


def add_quiet(p) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    alias(p, "--no-progress", "quiet", action="store_true")
