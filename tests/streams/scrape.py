"""Read a part's ``/metrics`` and ``/healthz`` over real HTTP, as Prometheus and a load
balancer would."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET (an HTTP error status is an answer, not an exception)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
        return exc.code, body


def health(base: str) -> tuple[int, dict[str, Any]]:
    status, body = get(base + "/healthz")
    return status, orjson.loads(body)


def scrape(base: str) -> Samples:
    """Every sample of ``/metrics`` as ``{(name, labels): value}``."""
    status, body = get(base + "/metrics")
    assert status == 200, body
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, None when the page does not have it."""
    return samples.get((name, frozenset(labels.items())))


def wait_for_samples(
    base: str,
    done: Callable[[Samples], bool],
    timeout: float = 60.0,
    alive: Callable[[], str | None] | None = None,
) -> Samples:
    """Scrape until ``done`` holds; fails with the last page's driftline samples on timeout,
    or at once when ``alive`` says the process died (it returns why)."""
    deadline = time.monotonic() + timeout
    samples: Samples = {}
    while True:
        if alive is not None and (why := alive()) is not None:
            raise AssertionError(why)
        try:
            samples = scrape(base)
        except (urllib.error.URLError, ConnectionError):
            samples = {}  # not listening yet
        if done(samples):
            return samples
        if time.monotonic() > deadline:
            shown = {k: v for k, v in samples.items() if k[0].startswith("driftline_")}
            raise AssertionError(f"timed out; last samples: {shown}")
        time.sleep(0.2)  # the parts update their metrics asynchronously; scrape again


def wait_healthy(proc: Any, base: str, log_path: Any, timeout: float = 90.0) -> dict[str, Any]:
    """Poll ``base``'s ``/healthz`` until it answers 200 and return its body; fail with the
    process's log if the process dies first, or with the last answer at the deadline."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while True:
        assert proc.poll() is None, log_path.read_text(errors="replace")[-3000:]
        try:
            status, body = health(base)
        except OSError:
            status = 0  # not listening yet
        if status == 200:
            return body
        assert time.monotonic() < deadline, f"never healthy; last answer {status}: {body}"
        time.sleep(0.5)  # the parts start (and join their groups) in their own time
