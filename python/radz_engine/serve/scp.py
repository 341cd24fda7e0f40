"""The pynetdicom SCP: C-ECHO, C-STORE of radiographs, calling-AE allow-list, optional TLS.

Presentation contexts: the scored SOP classes (CR, DX, Secondary Capture) with every transfer
syntax this installation can decode (checked with pydicom's decoders at start-up, so an
unsupported transfer syntax is refused at association negotiation, before any data is sent).
Other storage SOP classes are refused the same way, or with --other-sop-classes ignore,
accepted, journaled as "ignored" and never scored. Verification (C-ECHO) always.
"""

from __future__ import annotations

import logging
import ssl

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
    ae.maximum_associations = 32
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
    return ae


def start_scp(config: ServeConfig, on_store, on_echo=None):
    """Start listening (non-blocking); returns the pynetdicom server (call .shutdown())."""
    from pynetdicom import evt

    ae = make_ae(config)
    handlers = [(evt.EVT_C_STORE, on_store), (evt.EVT_C_ECHO, on_echo or (lambda event: 0x0000))]
    server = ae.start_server(
        (config.bind, int(config.port)), block=False, evt_handlers=handlers, ssl_context=tls_context(config)
    )
    log.info(
        "DICOM SCP %s listening on %s:%d%s%s",
        config.ae_title,
        config.bind,
        server.server_address[1],
        " (TLS)" if config.tls else "",
        f", callers allowed: {', '.join(config.allowed_callers)}" if config.allowed_callers else "",
    )
    return server
