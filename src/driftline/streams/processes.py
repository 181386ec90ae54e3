"""Stage 1 in several processes of one consumer group: spawned, supervised, stopped together.

rocksdict holds the GIL, so one process's stage 1 uses one core (DESIGN §1: "every core, then
every machine"). :class:`IngestProcesses` starts N children, each a whole
:class:`~driftline.streams.ingest.Ingest` in a fresh interpreter (multiprocessing's ``spawn``:
the parent's threads and sockets are not forked), all members of stage 1's one consumer group,
so Kafka's range assignment spreads the input partition numbers over them as it does over
processes on several machines. Each child asks Linux to kill it when its parent dies
(:func:`~driftline.streams.runtime.die_with_parent`), so none outlives a parent killed with -9.

Supervision is the thread rule of ``monitor run``: a child that exits while the parent is not
stopping takes the parent down (:class:`~driftline.errors.IngestProcessError`, logged with the
child's number, pid and exit status), so the service supervisor restarts the whole instead of
a monitor that looks alive with part of its partitions unconsumed (a dead member's partitions
would move to its siblings only after the session timeout, and back on its restart, which
nothing would do). Stopping sends SIGTERM to every child: each finishes its batch, emits its
partials, commits, leaves the group and closes its stores, as ingest does in a thread.

State: the children share ``<monitor.state_dir>/ingest/p<number>``, one RocksDB per input
partition number, as the threads of successive processes on one machine always have; when a
rebalance moves a partition number between children, the new owner waits for the old one's
RocksDB lock (:class:`~driftline.streams.store.PartitionStore`), which the kernel releases
when its holder dies, kill -9 included.

Endpoints: a child serves its own stage-1 ``/metrics`` and ``/healthz`` on
``monitor.metrics_port + 1 + i`` (child ``i`` from 0) when a port is configured, never on the
parent's; the parent's endpoint reports, under ``ingest``, the children alive and their ports.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from driftline.config import Settings
from driftline.errors import IngestProcessError
from driftline.streams.runtime import die_with_parent

__all__ = ["IngestProcesses", "ingest_processes", "usable_cores"]

log = logging.getLogger(__name__)
STOP_GRACE = 60.0
"""Seconds a child has, after SIGTERM, to emit, commit and leave before it is killed."""


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1.

    >>> usable_cores() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def ingest_processes(settings: Settings, requested: int | None) -> int:
    """How many stage-1 processes to run: ``requested``, or the usable cores, in either case
    at most the predictions topic's partition count (a member beyond it would own nothing).
    A topic that cannot be read leaves the number as it is (the children wait for the broker).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from driftline.kafka_auth import confluent_config

    wanted = usable_cores() if requested is None else requested
    if wanted == 1:
        return 1  # in-process, as before the option: no question to the broker
    topic = settings.topics.predictions
    try:
        metadata = AdminClient(confluent_config(settings.kafka)).list_topics(topic, timeout=10)
        partitions = len(metadata.topics[topic].partitions)
    except (KafkaException, KeyError) as exc:
        log.warning(
            "cannot read the partitions of %s (%s); %d ingest processes", topic, exc, wanted
        )
        return wanted
    if partitions and wanted > partitions:
        if requested is not None:
            log.warning(
                "--ingest-processes %d: %s has %d partitions, so %d ingest processes",
                *(requested, topic, partitions, partitions),
            )
        return partitions
    return wanted


def _child(settings: Settings, index: int, parent: int, metrics_port: int | None) -> None:
    """One child: stage 1 until SIGTERM (an error ends it with a traceback, exit status 1)."""
    die_with_parent(parent)
    from driftline.config.secrets import MIN_REDACTED, secret_values
    from driftline.logs import configure, hide
    from driftline.streams.ingest import Ingest
    from driftline.streams.runtime import tune_gc
    from driftline.telemetry.server import serve

    hide(v for v in secret_values(settings) if len(v) >= MIN_REDACTED)
    configure(settings.log_level, settings.log_format)
    tune_gc()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    # Ctrl-C reaches the whole process group: the parent stops its children itself, in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ingest = Ingest(settings).start()
    if metrics_port is not None:
        try:
            serve(ingest.telemetry.registry, metrics_port, settings.monitor.web_host, ingest.health)
        except OSError as exc:  # metrics are not worth a restart loop of the whole monitor
            log.warning(
                "ingest process %d serves no /metrics: port %d: %s", index, metrics_port, exc
            )
    ingest.run(stop)


class IngestProcesses:
    """N stage-1 processes of one consumer group, supervised (module docstring).

    Parameters
    ----------
    settings
        The monitor's settings, handed to every child as they are.
    processes
        How many children (at least 1).
    """

    def __init__(self, settings: Settings, processes: int) -> None:
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        self.settings = settings
        self.processes = processes
        self._children: list[BaseProcess] = []
        self._stopping = False

    def port(self, index: int) -> int | None:
        """The port child ``index`` serves its endpoint on (None: no endpoint)."""
        base = self.settings.monitor.metrics_port
        return None if base is None else base + 1 + index

    def start(self) -> IngestProcesses:
        """Spawn the children. Call it from the main thread: Linux sends the parent-death
        signal when the *thread* that started a child ends, not only its process."""
        context = multiprocessing.get_context("spawn")
        for index in range(self.processes):
            child = context.Process(
                target=_child,
                args=(self.settings, index, os.getpid(), self.port(index)),
                name=f"driftline-ingest-{index}",
            )
            child.start()
            self._children.append(child)
            log.info(
                "ingest process %d of %d started (pid %d)", index + 1, self.processes, child.pid
            )
        return self

    def run(self, stop: threading.Event) -> None:
        """Supervise until ``stop`` is set, then stop every child; raises
        :class:`~driftline.errors.IngestProcessError` when a child exits on its own (or
        fails to stop cleanly)."""
        try:
            while not stop.is_set():
                wait([child.sentinel for child in self._children], timeout=0.2)
                for index, child in enumerate(self._children):
                    if child.exitcode == 0:
                        # A child leaves cleanly only on SIGTERM: one sent to the whole
                        # process group (Ctrl-C in a terminal, a supervisor's stop) reaches
                        # the children first, and the parent is about to stop too.
                        stop.wait(STOP_GRACE / 10)
                    if child.exitcode is not None and not stop.is_set():
                        message = (
                            f"ingest process {index + 1} of {self.processes} (pid {child.pid}) "
                            f"exited with status {child.exitcode}; stopping the monitor so that "
                            "its supervisor restarts it whole"
                        )
                        log.error("%s", message)
                        raise IngestProcessError(message)
        finally:
            self.stop()
        failed = [
            f"{index + 1} (pid {child.pid}, exit status {child.exitcode})"
            for index, child in enumerate(self._children)
            if child.exitcode != 0
        ]
        if failed:
            raise IngestProcessError(f"ingest process(es) {', '.join(failed)} did not stop cleanly")

    def stop(self) -> None:
        """SIGTERM every child still running, wait for each to leave, kill the late ones."""
        if self._stopping:
            return
        self._stopping = True
        for child in self._children:
            if child.exitcode is None and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)
        for index, child in enumerate(self._children):
            child.join(STOP_GRACE)
            if child.exitcode is None:
                log.error(
                    "ingest process %d (pid %d) did not stop within %g s of SIGTERM; killed",
                    *(index + 1, child.pid, STOP_GRACE),
                )
                child.kill()
                child.join(5)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while every child runs (each child's own ``/healthz`` tells its loop's)."""
        alive = [child.exitcode is None for child in self._children]
        return bool(alive) and all(alive), {
            "part": "ingest",
            "processes": [
                {"pid": child.pid, "alive": up, "port": self.port(index)}
                for index, (child, up) in enumerate(zip(self._children, alive, strict=True))
            ],
        }

    @property
    def pids(self) -> list[int]:
        """The children's process ids, in order."""
        return [child.pid for child in self._children if child.pid is not None]
