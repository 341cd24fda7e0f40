"""The pynetdicom SCP: C-ECHO, C-STORE of radiographs, calling-AE allow-list, optional TLS.

Presentation contexts: the scored SOP classes (CR, DX, Secondary Capture) with every transfer
syntax this installation can decode (checked with pydicom's decoders at start-up, so an
unsupported transfer syntax is refused at association negotiation, before any data is sent).
Other storage SOP classes are refused the same way, or with --other-sop-classes ignore,
accepted, journaled as "ignored" and never scored. Verification (C-ECHO) always. The called AE title must be ours (configurable).

TLS: pynetdicom's own server does the TLS handshake inside its accept loop, so one idle TCP
connection would hold up every other association. Here the accept loop only accepts; each
handshake runs in the connection's own thread with a timeout (--tls-handshake-timeout), and at
most --max-associations handshakes wait at once (beyond that a new connection is closed).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time

from radz_engine.serve.config import SCORED_SOP_CLASSES, ServeConfig

__all__ = ["make_ae", "start_scp", "decodable_transfer_syntaxes", "tls_context"]

log = logging.getLogger("radz_engine.serve")
_VERIFICATION = "1.2.840.10008.1.1"
_CANDIDATE_SYNTAXES = (
    "ExplicitVRLittleEndian",
    "ImplicitVRLittleEndian",
    "DeflatedExplicitVRLittleEndian",
    "ExplicitVRBigEndian",
    "JPEGBaseline8Bit",
    "JPEGExtended12Bit",
    "JPEGLossless",
    "JPEGLosslessSV1",
    "JPEGLSLossless",
    "JPEGLSNearLossless",
    "JPEG2000Lossless",
    "JPEG2000",
    "RLELossless",
    "HTJ2KLossless",
    "HTJ2KLosslessRPCL",
    "HTJ2K",
)


def decodable_transfer_syntaxes() -> list[str]:
    """Transfer syntaxes whose pixel data pydicom can decode here (native ones always)."""
    from pydicom import uid
    from pydicom.pixels import get_decoder

    out = []
    for name in _CANDIDATE_SYNTAXES:
        value = getattr(uid, name, None)
        if value is None:
            continue
        try:
            if not value.is_compressed or get_decoder(value).is_available:
                out.append(str(value))
        except (NotImplementedError, ValueError):  # no decoder for it in this pydicom
            continue
    return out


def tls_context(config: ServeConfig) -> ssl.SSLContext | None:
    """A server-side TLS context from --tls-cert/--tls-key (and --tls-ca to require client certificates)."""
    if not config.tls:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    if config.tls_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(str(config.tls_ca))
    return context


def make_ae(config: ServeConfig):
    """The Application Entity with its presentation contexts and security settings."""
    from pynetdicom import AE, StoragePresentationContexts

    ae = AE(ae_title=config.ae_title)
    ae.maximum_associations = int(config.max_associations)
    ae.acse_timeout = 30
    ae.dimse_timeout = 60
    ae.network_timeout = 60  # an association idle (or dropped midway) this long is aborted
    syntaxes = decodable_transfer_syntaxes()
    ae.add_supported_context(_VERIFICATION)
    for sop_class in SCORED_SOP_CLASSES:
        ae.add_supported_context(sop_class, syntaxes)
    if config.other_sop_classes == "ignore":
        for context in StoragePresentationContexts:
            if context.abstract_syntax not in SCORED_SOP_CLASSES and len(ae.supported_contexts) < 128:
                ae.add_supported_context(context.abstract_syntax, syntaxes)
    if config.allowed_callers:
        ae.require_calling_aet = list(config.allowed_callers)
    ae.require_called_aet = bool(config.check_called_ae)
    return ae


def _server_class():
    from pynetdicom.transport import ThreadedAssociationServer

    class RadzAssociationServer(ThreadedAssociationServer):
        """pynetdicom's threaded server with the TLS handshake moved off the accept loop."""

        handshake_timeout = 10.0
        max_handshakes = 32

        def get_request(self):
            client, address = self.socket.accept()
            if self.ssl_context:
                with self._handshakes_lock:
                    if len(self._handshakes) >= self.max_handshakes:
                        client.close()
                        self.handshakes_refused += 1
                        raise OSError("too many TLS handshakes waiting")  # socketserver drops the request
                client = self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
            return client, address

        def process_request_thread(self, request, client_address):
            if self.ssl_context:
                token = object()
                with self._handshakes_lock:
                    self._handshakes[token] = time.monotonic()
                try:
                    previous = request.gettimeout()
                    request.settimeout(self.handshake_timeout)
                    request.do_handshake()
                    request.settimeout(previous)
                except (OSError, ValueError):  # timed out, not TLS, certificate refused, closed
                    self.shutdown_request(request)
                    return
                finally:
                    with self._handshakes_lock:
                        self._handshakes.pop(token, None)
            super().process_request_thread(request, client_address)

        def handle_error(self, request, client_address) -> None:  # quiet: no tracebacks with wire data
            log.debug("connection from %s ended with an error", client_address[0] if client_address else "?")

        def tls_handshakes(self) -> tuple[int, float]:
            """(handshakes in progress, age in seconds of the oldest)."""
            with self._handshakes_lock:
                ages = [time.monotonic() - t for t in self._handshakes.values()]
            return len(ages), max(ages, default=0.0)

    return RadzAssociationServer


def start_scp(config: ServeConfig, on_store, on_echo=None):
    """Start listening (non-blocking); returns the pynetdicom server (call .shutdown())."""
    from pynetdicom import evt

    ae = make_ae(config)
    handlers = [(evt.EVT_C_STORE, on_store), (evt.EVT_C_ECHO, on_echo or (lambda event: 0x0000))]
    server_class = _server_class()
    server = ae.make_server(
        (config.bind, int(config.port)),
        ssl_context=tls_context(config),
        evt_handlers=handlers,
        server_class=server_class,
    )
    server._handshakes, server._handshakes_lock, server.handshakes_refused = {}, threading.Lock(), 0
    server.handshake_timeout = float(config.tls_handshake_timeout_s)
    server.max_handshakes = int(config.max_associations)
    ae._servers.append(server)  # as AE.start_server does: AE.shutdown() stops it too
    threading.Thread(target=server.serve_forever, name="radz-scp-accept", daemon=True).start()
    log.info(
        "DICOM SCP %s listening on %s:%d%s%s",
        config.ae_title,
        config.bind,
        server.server_address[1],
        " (TLS)" if config.tls else "",
        f", callers allowed: {', '.join(config.allowed_callers)}" if config.allowed_callers else "",
    )
    return server
