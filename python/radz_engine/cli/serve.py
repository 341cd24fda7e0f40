"""`radz serve`: run the DICOM node until SIGTERM / Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from radz_engine.backends import BACKENDS
from radz_engine.cli.options import alias
from radz_engine.serve.config import ConfigError, ServeConfig, parse_peer

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """Bad options: one line naming the option, exit status 2 (no usage dump, no traceback)."""

    def error(self, message: str):
        self.exit(2, f"radz serve: {message} (see radz serve --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="radz serve",
        description="A DICOM node: receives radiographs by C-STORE, scores them, and sends a DICOM "
        "Comprehensive SR back to the PACS. Every received instance is journaled before it is "
        "acknowledged and survives a crash.",
    )
    p.add_argument("--bundle", type=Path, default=None, help="model bundle (default: the shipped one)")
    p.add_argument(
        "--research-use",
        action="store_true",
        help="serve a bundle whose model card says intended use 'research' (the shipped one does); every SR then "
        "carries the notice 'For research use only; not for diagnostic use' in its content and series description",
    )
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path("radz-serve"),
        help="journal, spool and results live here (default ./radz-serve)",
    )
    p.add_argument("--ae-title", default="RADZ", help="this node's AE title (default RADZ)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=11112, help="DICOM port (default 11112)")
    p.add_argument(
        "--forward",
        default=None,
        metavar="AE@HOST:PORT",
        help="where SRs go, e.g. ORTHANC@127.0.0.1:4242 (default: kept in the spool only)",
    )
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="AE",
        help="calling AE title allowed to connect (repeat; required when --bind is not loopback)",
    )
    p.add_argument(
        "--out",
        dest="results_dir",
        type=Path,
        default=None,
        help="folder of JSON-lines results (default WORK_DIR/results)",
    )
    alias(p, "--results-dir", "results_dir", type=Path)
    p.add_argument("--webhook", default=None, metavar="URL", help="POST each result as JSON here (best effort)")
    p.add_argument("--tls-cert", type=Path, default=None, help="TLS certificate (PEM); with --tls-key")
    p.add_argument("--tls-key", type=Path, default=None, help="TLS private key (PEM)")
    p.add_argument("--tls-ca", type=Path, default=None, help="require client certificates signed by this CA")
    p.add_argument("--max-dataset-mb", type=float, default=512.0, help="largest dataset accepted (default 512)")
    p.add_argument("--max-rows", type=int, default=16384, help="largest image height accepted")
    p.add_argument("--max-columns", type=int, default=16384, help="largest image width accepted")
    p.add_argument(
        "--other-sop-classes",
        choices=("reject", "ignore"),
        default="reject",
        help="non-radiograph storage: refuse at negotiation (default) or accept and ignore",
    )
    p.add_argument("--modalities", default="CR,DX,OT", help="Modality values scored (default CR,DX,OT)")
    p.add_argument(
        "--body-parts",
        default="CHEST,THORAX",
        help="BodyPartExamined values scored when the attribute is present (default CHEST,THORAX); others are "
        "acknowledged and journaled ignored",
    )
    p.add_argument(
        "--view-positions",
        default="PA,AP,LL,RL,LATERAL",
        help="ViewPosition values scored when present (default PA,AP,LL,RL,LATERAL; empty: any)",
    )
    p.add_argument(
        "--secondary-capture",
        choices=("chest", "any"),
        default="chest",
        help="Secondary Capture scored only when grayscale and marked BodyPartExamined CHEST (default), "
        "or any grayscale one",
    )
    p.add_argument(
        "--any-called-ae",
        action="store_true",
        help="accept associations whatever AE title the caller addresses (default: only --ae-title)",
    )
    p.add_argument(
        "--max-associations",
        type=int,
        default=32,
        help="associations served at once (default 32); more are rejected and /healthz reports degraded",
    )
    p.add_argument(
        "--tls-handshake-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds a TLS handshake may take (default 10; it runs off the accept loop)",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="where the model runs: cpu (default), cuda, cuda:N, auto, or several GPUs as cuda:0,cuda:1",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="inference backend (default auto: ONNX Runtime with the best provider for --device; torch needs "
        "PyTorch and --checkpoint)",
    )
    p.add_argument(
        "--checkpoint", type=Path, default=None, help="--backend torch: the `radz train` checkpoint folder it runs"
    )
    p.add_argument(
        "--http-port",
        type=int,
        default=8089,
        help="/healthz and /metrics on 127.0.0.1 (0: any free port, -1: off; default 8089)",
    )
    p.add_argument(
        "--workers", dest="scoring_workers", type=int, default=2, help="threads decoding received images (default 2)"
    )
    alias(p, "--scoring-workers", "scoring_workers", type=int)
    p.add_argument(
        "--max-in-flight",
        type=int,
        default=64,
        help="instances between decoding and their SR at once (bounds memory; default 64)",
    )
    p.add_argument("--threads", type=int, default=None, help="model intra-op threads (default: all cores)")
    p.add_argument("--int8", action="store_true", help="the bundle's int8 image encoder (radz quantize; faster on CPU)")
    p.add_argument("--keep-spool", action="store_true", help="keep received datasets and SRs after use")
    p.add_argument(
        "--similar-index",
        type=Path,
        default=None,
        help="a similar-case index (radz index build) of this bundle: each SR and result lists the nearest "
        "indexed cases (their sources and findings, no patient data)",
    )
    p.add_argument("--neighbours", type=int, default=3, help="similar cases per SR with --similar-index")
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="serve.log detail (default INFO)",
    )
    return p


def _check_ports(config: ServeConfig) -> None:
    """Bind --port and --http-port once (then close): a port in use or an address that cannot
    be bound is reported naming its option, before anything starts."""
    import socket

    checks = [("--port", config.bind, int(config.port))]
    if config.http_port:
        checks.append(("--http-port", "127.0.0.1", int(config.http_port)))
    for option, host, port in checks:
        if port == 0:
            continue
        try:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as pynetdicom does
                probe.bind((host, port))
        except OSError as error:
            raise ConfigError(f"{option} {port}: cannot listen on {host}: {error.strerror or error}") from None


def config_from_args(args) -> ServeConfig:
    return ServeConfig(
        work_dir=args.work_dir,
        bundle=args.bundle,
        ae_title=args.ae_title,
        bind=args.bind,
        port=args.port,
        forward=parse_peer(args.forward) if args.forward else None,
        allowed_callers=tuple(args.allow),
        results_dir=args.results_dir,
        webhook=args.webhook,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_ca=args.tls_ca,
        max_dataset_mb=args.max_dataset_mb,
        max_rows=args.max_rows,
        max_columns=args.max_columns,
        other_sop_classes=args.other_sop_classes,
        allowed_modalities=tuple(args.modalities.split(",")),
        body_parts=tuple(args.body_parts.split(",")),
        view_positions=tuple(args.view_positions.split(",")),
        secondary_capture=args.secondary_capture,
        check_called_ae=not args.any_called_ae,
        max_associations=args.max_associations,
        tls_handshake_timeout_s=args.tls_handshake_timeout,
        device=args.device,
        backend=args.backend,
        checkpoint=args.checkpoint,
        http_port=None if args.http_port == -1 else args.http_port,
        scoring_workers=args.scoring_workers,
        max_in_flight=args.max_in_flight,
        engine_threads=args.threads,
        keep_spool=args.keep_spool,
        int8=args.int8,
        research_use=args.research_use,
        similar_index=args.similar_index,
        neighbours=args.neighbours,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # pynetdicom, pydicom and highdicom log identifiers and malformed values: kept out of the log.
    from radz_engine.serve.privacy import quiet_third_party_logs

    quiet_third_party_logs()
    try:
        config = config_from_args(args)
        _check_ports(config)  # before the model loads: a port in use is an option error
    except ConfigError as error:
        print(f"radz serve: {error}", file=sys.stderr)
        return 2
    from radz_engine.errors import BundleError, RadzError
    from radz_engine.serve.server import RadzServer

    try:
        server = RadzServer(config).start()
    except ConfigError as error:
        print(f"radz serve: {error}", file=sys.stderr)
        return 2
    except (BundleError, RadzError, OSError, ValueError) as error:
        print(f"radz serve: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # A line tests and supervisors can wait for.
    print(
        f"radz serve: {config.ae_title} listening on {config.bind}:{server.port}"
        + (f", http 127.0.0.1:{server.http_port}" if server.http_port else "")
        + (f", forwarding SRs to {config.forward}" if config.forward else ""),
        flush=True,
    )
    if server.notice:
        print(f"radz serve: every SR says: {server.notice}", file=sys.stderr, flush=True)
    stop.wait()
    print("radz serve: stopping (finishing received work)", file=sys.stderr, flush=True)
    server.stop()
    return 0
