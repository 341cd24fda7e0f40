"""Every option of `radz serve`, validated in one place."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServeConfig", "Peer", "parse_peer", "SCORED_SOP_CLASSES", "ConfigError"]

# SOP classes scored: CR, DX (for presentation and for processing), Secondary Capture.
SCORED_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1": "CR",
    "1.2.840.10008.5.1.4.1.1.1.1": "DX for presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DX for processing",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture",
}
_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # 16 printable characters, no backslash


class ConfigError(ValueError):
    """A bad option; the message names it."""


@dataclass(frozen=True)
class Peer:
    """A DICOM node: AE title, host, port."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def _check_ae(value: str, option: str) -> str:
    value = value.strip()
    if not _AE_RE.match(value):
        raise ConfigError(f"{option}: {value!r} is not an AE title (1-16 printable characters, no backslash)")
    return value


def parse_peer(text: str, option: str = "--forward") -> Peer:
    """ "AE@host:port" -> Peer."""
    match = re.match(r"^([^@]+)@(.+):(\d+)$", text.strip())
    if not match:
        raise ConfigError(f"{option}: {text!r} is not AE@host:port (e.g. ORTHANC@127.0.0.1:4242)")
    port = int(match.group(3))
    if not 0 < port < 65536:
        raise ConfigError(f"{option}: port {port} is out of range 1-65535")
    return Peer(_check_ae(match.group(1), option), match.group(2), port)


def _check_device(device) -> str | tuple[str, ...]:
    """ "cpu", "cuda", "cuda:N", "auto", or several of them ("cuda:0,cuda:1")."""
    devices = [d.strip() for d in (device.split(",") if isinstance(device, str) else device)]
    if not devices or not all(devices):
        raise ConfigError(f"--device: {device!r}: give cpu, cuda, cuda:N, auto, or a comma list (cuda:0,cuda:1)")
    for d in devices:
        if not re.match(r"^(cpu|auto|cuda(:\d+)?)$", d):
            raise ConfigError(f"--device: {d!r} is not cpu, cuda, cuda:N or auto")
    if len(devices) > 1 and any(d in ("cpu", "auto") for d in devices):
        raise ConfigError(f"--device: a list is of GPUs only (cuda:0,cuda:1), not {device!r}")
    return devices[0] if len(devices) == 1 else tuple(devices)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServeConfig:
    """Options of `radz serve` (see `radz serve --help` for each)."""

    work_dir: Path
    bundle: Path | None = None
    ae_title: str = "RADZ"
    bind: str = "127.0.0.1"
    port: int = 11112
    forward: Peer | None = None
    allowed_callers: tuple[str, ...] = ()
    results_dir: Path | None = None
    webhook: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    max_dataset_mb: float = 512.0
    max_rows: int = 16384
    max_columns: int = 16384
    other_sop_classes: str = "reject"  # or "ignore": accept, journal as ignored, never score
    allowed_modalities: tuple[str, ...] = ("CR", "DX", "OT")
    body_parts: tuple[str, ...] = ("CHEST", "THORAX")  # BodyPartExamined scored when present
    view_positions: tuple[str, ...] = ("PA", "AP", "LL", "RL", "LATERAL")  # ViewPosition scored when present
    secondary_capture: str = "chest"  # "chest": only grayscale SC marked BodyPartExamined CHEST; "any": any grayscale
    check_called_ae: bool = True  # refuse associations whose called AE title is not ours
    max_associations: int = 32
    tls_handshake_timeout_s: float = 10.0
    device: str | tuple[str, ...] = "cpu"
    backend: str = "auto"  # one of radz_engine.backends.BACKENDS
    checkpoint: Path | None = None  # --backend torch: the `radz train` checkpoint folder it runs
    http_port: int | None = 8089  # None: no /healthz, /metrics
    scoring_workers: int = 2
    max_in_flight: int = 64  # received datasets held in memory between decoding and their SR
    engine_threads: int | None = None
    int8: bool = False  # the bundle's int8 image encoder (radz quantize)
    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    model_name: str | None = None  # the SR's Algorithm Name (default: the model card's name)
    research_use: bool = False  # --research-use: serve a bundle whose intended use is "research"
    keep_spool: bool = False  # keep received datasets and SRs after use (default: delete once done)
    similar_index: Path | None = None  # a similar-case index (radz index build): neighbours in each SR
    neighbours: int = 3  # similar cases per SR with similar_index

    def __post_init__(self) -> None:
        self.work_dir = Path(self.work_dir)
        self.results_dir = Path(self.results_dir) if self.results_dir else self.work_dir / "results"
        self.ae_title = _check_ae(self.ae_title, "--ae-title")
        self.allowed_callers = tuple(_check_ae(a, "--allow") for a in self.allowed_callers)
        if not 0 <= int(self.port) < 65536:
            raise ConfigError(f"--port: {self.port} is out of range 0-65535")
        if self.http_port is not None and not 0 <= int(self.http_port) < 65536:
            raise ConfigError(f"--http-port: {self.http_port} is out of range 0-65535 (or -1: off)")
        if self.engine_threads is not None and int(self.engine_threads) < 1:
            raise ConfigError(f"--threads: must be >= 1, got {self.engine_threads}")
        if self.secondary_capture not in ("chest", "any"):
            raise ConfigError(f"--secondary-capture: 'chest' or 'any', not {self.secondary_capture!r}")
        self.device = _check_device(self.device)
        from radz_engine.backends import BACKENDS

        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend: one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if (self.backend == "torch") != (self.checkpoint is not None):
            raise ConfigError(
                "--checkpoint (a `radz train` checkpoint folder) goes with --backend torch, and only with it"
            )
        if self.similar_index is not None and not (Path(self.similar_index) / "manifest.json").is_file():
            raise ConfigError(f"--similar-index: {self.similar_index} is not an index folder (radz index build)")
        if int(self.neighbours) < 1:
            raise ConfigError(f"--neighbours: must be >= 1, got {self.neighbours}")
        if self.checkpoint is not None and not Path(self.checkpoint).is_dir():
            raise ConfigError(f"--checkpoint: {self.checkpoint} is not a folder")
        if not _is_loopback(self.bind) and not self.allowed_callers:
            raise ConfigError(
                f"--bind {self.bind}: listening beyond loopback needs a calling-AE allow-list (--allow AE)"
            )
        if self.other_sop_classes not in ("reject", "ignore"):
            raise ConfigError(f"--other-sop-classes: 'reject' or 'ignore', not {self.other_sop_classes!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        for option, value in (("--tls-cert", self.tls_cert), ("--tls-key", self.tls_key), ("--tls-ca", self.tls_ca)):
            if value is not None and not Path(value).is_file():
                raise ConfigError(f"{option}: {value} is not a file")
        if self.tls_ca is not None and self.tls_cert is None:
            raise ConfigError("--tls-ca (verify callers' certificates) needs --tls-cert and --tls-key")
        for option, value in (
            ("--max-dataset-mb", self.max_dataset_mb),
            ("--max-rows", self.max_rows),
            ("--max-columns", self.max_columns),
            ("--workers", self.scoring_workers),
            ("--max-in-flight", self.max_in_flight),
            ("--retry-base-s", self.retry_base_s),
            ("--retry-max-s", self.retry_max_s),
            ("--max-associations", self.max_associations),
            ("--tls-handshake-timeout", self.tls_handshake_timeout_s),
        ):
            if not value > 0:
                raise ConfigError(f"{option}: must be > 0, got {value}")
        if self.webhook is not None and not re.match(r"^https?://", self.webhook):
            raise ConfigError(f"--webhook: {self.webhook!r} is not an http(s) URL")
        for option, name in (("--modalities", "allowed_modalities"), ("--body-parts", "body_parts")):
            values = tuple(v.strip().upper() for v in getattr(self, name) if v.strip())
            if not values:
                raise ConfigError(f"{option}: give at least one value (comma-separated)")
            for v in values:
                if not re.match(r"^[A-Z0-9_ ]{1,16}$", v):
                    raise ConfigError(f"{option}: {v!r} is not a DICOM code string (A-Z, 0-9, _, space; 16 at most)")
            setattr(self, name, values)
        self.view_positions = tuple(v.strip().upper() for v in self.view_positions if v.strip())

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def max_dataset_bytes(self) -> int:
        return int(self.max_dataset_mb * 2**20)

    def retry_delay(self, attempts: int) -> float:
        """Back-off before the next delivery attempt: base * 2^(attempts-1), capped."""
        return min(self.retry_max_s, self.retry_base_s * 2 ** max(0, attempts - 1))
