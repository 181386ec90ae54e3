"""The endpoint of a monitor process: ``/metrics`` (Prometheus) and ``/healthz``.

:func:`serve` exposes a registry and a health check on 127.0.0.1 by default, with
prometheus-client's machinery: its WSGI app renders ``/metrics`` (and negotiates the format
and compression as Prometheus asks), its threading WSGI server serves the requests; the
health check is a small WSGI app beside it. :func:`combined_health` makes one health check of
several parts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

__all__ = ["Health", "combined_health", "endpoint", "serve"]

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


def endpoint(registry: CollectorRegistry, health: Health | None = None) -> WSGIApplication:
    """The WSGI app of the endpoint: ``/metrics`` is prometheus-client's own app,
    ``/healthz`` answers 200 or 503 with a JSON body, anything else 404."""
    metrics: WSGIApplication = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            ok, detail = health() if health is not None else (True, {})
            body = orjson.dumps({"status": "ok" if ok else "unhealthy", **detail})
            status = "200 OK" if ok else "503 Service Unavailable"
            return _respond(start_response, status, body, "application/json")
        body = b"not found: try /metrics or /healthz\n"
        return _respond(start_response, "404 Not Found", body, "text/plain")

    return app


def serve(
    registry: CollectorRegistry, port: int, host: str = "127.0.0.1", health: Health | None = None
) -> WSGIServer:
    """Serve :func:`endpoint` on ``host:port`` from a daemon thread; returns the server
    (``shutdown()`` stops it, ``server_close()`` releases the port)."""
    server = make_server(
        host, port, endpoint(registry, health), ThreadingWSGIServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="driftline-http", daemon=True).start()
    return server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return  # scrapes every few seconds would drown the log


def _respond(
    start_response: StartResponse, status: str, body: bytes, content_type: str
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
