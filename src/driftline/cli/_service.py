"""What every long-running part checks and sets up before it starts: settings, logging, signals."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from driftline.cli._common import fail
from driftline.config import Settings, load_settings, unknown_variables
from driftline.errors import ConfigError, TopicError


def startup_checks(settings: Settings, *, stage2: bool) -> None:
    """What a monitor part checks before it starts, raising to stop it with a message.

    Stage 2's Kafka security must be honoured whole
    (:func:`~driftline.kafka_auth.faust_credentials`), and the input and summaries topics must
    keep their records as long as the settings need
    (:func:`~driftline.topics.check_retention`): with less, a restart would judge windows on
    incomplete panes and a fresh machine could not rebuild its state, silently, so the part
    stops rather than warns. Every topic of the settings must exist (one a newer driftline
    added, like ``driftline.rollout``, would otherwise stop a part mid-start with a trace).
    No broker answering at all within :data:`~driftline.topics.BROKER_PROBE_TIMEOUT` stops
    the part with one line naming the bootstrap servers
    (:class:`~driftline.errors.BrokerUnavailableError`): its consumers would otherwise give up
    later with a less clear message, after librdkafka had logged every failed connection. A
    broker that answers but cannot be asked about the topics is only a warning.
    """
    from driftline.topics import check_broker, check_retention, missing_topics

    if stage2:
        from driftline.kafka_auth import faust_credentials

        faust_credentials(settings.kafka)
    check_broker(settings.kafka)
    log = logging.getLogger("driftline.cli")
    try:
        short = check_retention(settings.kafka, settings)
        missing = missing_topics(settings.kafka, list(settings.topics.names().values()))
    except TopicError as exc:
        log.warning("cannot check the topics, starting anyway: %s", exc)
        return
    if short:
        raise TopicError(
            "the topics keep their records for less than the settings need; a restart "
            "would judge windows on incomplete panes: " + "; ".join(str(s) for s in short)
        )
    if missing:
        raise TopicError(
            f"topic(s) {', '.join(missing)} do not exist (never created, or added by a newer "
            "driftline than the one that created the others): run driftline topics create"
        )


def service_settings(config: Path | None) -> Settings:
    """Settings for a long-running part, with its logging configured; exits 2 when invalid.
    A ``DRIFTLINE_…`` variable that names no setting is logged as a warning."""
    from driftline.logs import configure

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        raise fail(exc) from None
    configure(settings.log_level, settings.log_format)
    for warning in unknown_variables():
        logging.getLogger("driftline.cli").warning("%s", warning)
    from driftline.streams.runtime import tune_gc

    tune_gc()
    return settings


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so loops finish their batch and flush."""
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
