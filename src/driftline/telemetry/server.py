"""The endpoint of a monitor process: ``/metrics`` (Prometheus) and ``/healthz``.

:func:`serve` exposes a registry and a health check on 127.0.0.1 by default;
:func:`combined_health` makes one health check of several parts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["Health", "combined_health", "serve"]

Health = Callable[[], tuple[bool, dict[str, Any]]]
"""``() -> (healthy, detail)``: the detail is the JSON body of ``/healthz``."""


def combined_health(parts: Mapping[str, Health]) -> Health:
    """One health check of several parts: healthy only if every part is.

    >>> check = combined_health({"a": lambda: (True, {"x": 1}), "b": lambda: (False, {})})
    >>> check()
    (False, {'parts': {'a': {'status': 'ok', 'x': 1}, 'b': {'status': 'unhealthy'}}})
    """
    checks = dict(parts)

    def health() -> tuple[bool, dict[str, Any]]:
        ok = True
        detail: dict[str, dict[str, Any]] = {}
        for name, check in checks.items():
            part_ok, part = check()
            ok = ok and part_ok
            detail[name] = {"status": "ok" if part_ok else "unhealthy", **part}
        return ok, {"parts": detail}

    return health


def serve(
    registry: CollectorRegistry, port: int, host: str = "127.0.0.1", health: Health | None = None
) -> ThreadingHTTPServer:
    """Serve ``/metrics`` (Prometheus) and ``/healthz`` (200 or 503 with a JSON body) from a
    daemon thread; returns the server (``shutdown()`` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                ok, detail = health() if health is not None else (True, {})
                body = orjson.dumps({"status": "ok" if ok else "unhealthy", **detail})
                self._send(200 if ok else 503, body, "application/json")
            else:
                self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes every few seconds would drown the log

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="driftline-http", daemon=True).start()
    return server
