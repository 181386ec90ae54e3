"""``driftline topics``: create driftline's topics with their partitions and policies."""

from __future__ import annotations

import typer
from rich.table import Table

from driftline.cli._common import BrokerTimeout, ConfigFile, fail, out
from driftline.config import load_settings
from driftline.errors import DriftlineError

app = typer.Typer(help="Create driftline's Kafka topics.", no_args_is_help=True)


@app.command("create")
def topics_create(
    config: ConfigFile = None,
    timeout: BrokerTimeout = 30.0,
) -> None:
    """Create every topic with its partitions and policy; safe to run again.

    The input and summaries topics keep their records for ``monitor.join_ttl`` plus the longest
    window and its lateness plus a day; an existing one that keeps less is refused (exit 1),
    naming the topic, its retention and what the settings need. No broker answering within
    5 s (or ``--timeout``, when shorter) is one line naming the bootstrap servers (exit 1).
    """
    from driftline.topics import BROKER_PROBE_TIMEOUT, check_broker, create_topics

    try:
        settings = load_settings(config)
        check_broker(settings.kafka, timeout=min(timeout, BROKER_PROBE_TIMEOUT))
        outcomes = create_topics(
            settings.kafka, settings.topics, timeout=timeout, settings=settings
        )
    except DriftlineError as exc:
        raise fail(exc) from None
    table = Table("role", "topic", "partitions", "policy", "status")
    for o in outcomes:
        policy = ", ".join(f"{k}={v}" for k, v in o.spec.config.items()) or "-"
        table.add_row(o.spec.role, o.spec.name, str(o.partitions), policy, o.status)
    out.print(table)
