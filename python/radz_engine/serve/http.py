"""/healthz (JSON) and /metrics (Prometheus text) on loopback, for the server's operators."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Metrics", "StatusServer"]


class Metrics:
    """The server's Prometheus metrics, in their own registry (no process-global state)."""

    def __init__(self, journal) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.received = Counter(
            "radz_received_total", "C-STORE requests handled, by outcome", ["outcome"], registry=self.registry
        )
        self.scored = Counter("radz_scored_total", "instances scored and answered with an SR", registry=self.registry)
        self.failed = Counter(
            "radz_failed_total", "received instances that could not be scored", registry=self.registry
        )
        self.delivered = Counter("radz_delivered_total", "SRs stored in the PACS", registry=self.registry)
        self.delivery_errors = Counter(
            "radz_delivery_errors_total", "failed SR delivery attempts", registry=self.registry
        )
        self.webhook_errors = Counter("radz_webhook_errors_total", "webhook posts that failed", registry=self.registry)
        buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
        self.to_scored = Histogram(
            "radz_received_to_scored_seconds", "C-STORE received -> SR written", buckets=buckets, registry=self.registry
        )
        self.to_delivered = Histogram(
            "radz_received_to_delivered_seconds",
            "C-STORE received -> SR stored in the PACS",
            buckets=buckets,
            registry=self.registry,
        )
        journal_gauge = Gauge("radz_journal_instances", "journal rows by state", ["state"], registry=self.registry)
        for state in ("received", "scored", "delivered", "failed", "rejected", "ignored"):
            journal_gauge.labels(state).set_function(lambda s=state: journal.counts()[s])

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class StatusServer:
    """A small HTTP server: GET /healthz -> health() as JSON (200 if ok else 503), GET /metrics."""

    def __init__(self, host: str, port: int, health, metrics: Metrics) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                if self.path.split("?")[0] == "/healthz":
                    report = health()
                    body = json.dumps(report).encode()
                    self._reply(200 if report.get("ok") else 503, "application/json", body)
                elif self.path.split("?")[0] == "/metrics":
                    from prometheus_client import CONTENT_TYPE_LATEST

                    self._reply(200, CONTENT_TYPE_LATEST, outer.metrics.text())
                else:
                    self._reply(404, "text/plain", b"not found: try /healthz or /metrics\n")

            def _reply(self, code: int, kind: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # quiet: scrapes every few seconds
                pass

        self.metrics = metrics
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="radz-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
