"""Retrying InfluxDB writes: influxdb-client's errors translated, and the back-off between tries."""

from __future__ import annotations

import random

import pytest
import urllib3
from influxdb_client.rest import ApiException

from driftline.errors import InfluxRejectedError, InfluxUnavailableError
from driftline.sinks.retry import Backoff, translate_write_error

CONNECTION = urllib3.connection.HTTPConnection("influx", 8086)  # never connects
POOL = urllib3.HTTPConnectionPool("influx", 8086)


def response(status: int, body: bytes, headers: dict[str, str] | None = None) -> ApiException:
    answer = urllib3.HTTPResponse(body=body, status=status, headers=headers or {})
    exc: ApiException = ApiException(http_resp=answer)  # type: ignore[no-untyped-call]
    return exc


def test_influxdb_client_errors_become_driftline_errors() -> None:
    url = "http://influx:8086"
    refused = translate_write_error(
        urllib3.exceptions.NewConnectionError(CONNECTION, "Connection refused"), url
    )
    assert isinstance(refused, InfluxUnavailableError)
    timeout = translate_write_error(urllib3.exceptions.ReadTimeoutError(POOL, url, "slow"), url)
    assert isinstance(timeout, InfluxUnavailableError)

    busy = translate_write_error(response(503, b'{"message":"busy"}', {"Retry-After": "7"}), url)
    assert isinstance(busy, InfluxUnavailableError)
    assert (busy.status, busy.retry_after) == (503, 7.0)
    assert "HTTP 503: busy" in str(busy)

    bad = translate_write_error(response(400, b'{"message":"unable to parse x"}'), url)
    assert isinstance(bad, InfluxRejectedError)
    assert bad.message == "HTTP 400: unable to parse x"
    assert isinstance(translate_write_error(response(422, b"{}"), url), InfluxRejectedError)

    auth = translate_write_error(response(401, b'{"message":"unauthorized access"}'), url)
    assert isinstance(auth, InfluxUnavailableError)
    assert "check the token" in str(auth)

    assert translate_write_error(ValueError("a bug"), url) is None


def test_backoff_doubles_from_base_to_cap_and_jitters_within_each_ceiling() -> None:
    plain = Backoff(base=0.5, cap=10.0, jitter=0.0)
    assert [plain.delay(n, random.Random(0)) for n in range(1, 8)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        10.0,
        10.0,
    ]
    jittered = Backoff(base=0.5, cap=10.0, jitter=0.5)
    rng = random.Random(42)
    for attempt in range(1, 200):
        delay = jittered.delay(attempt, rng)
        assert jittered.ceiling(attempt) / 2 <= delay <= jittered.ceiling(attempt)
    first = [jittered.delay(n, random.Random(9)) for n in range(1, 6)]
    assert first == [jittered.delay(n, random.Random(9)) for n in range(1, 6)]
    assert jittered.delay(1, rng, at_least=3.0) == 3.0
    assert jittered.delay(1, rng, at_least=60.0) == 10.0  # a Retry-After past the cap


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"base": 0.0}, "base"),
        ({"base": 2.0, "cap": 1.0}, "cap"),
        ({"jitter": 1.5}, "jitter"),
    ],
)
def test_backoff_rejects_bad_parameters_by_name(kwargs: dict[str, float], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        Backoff(**kwargs)
