"""``driftline simulate``: a simulated model-serving service that follows its champion."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from driftline.cli._common import ConfigFile, fail, say
from driftline.cli._service import service_settings
from driftline.errors import ConfigError, ConfigProblem, DriftlineError


def simulate(
    config: ConfigFile = None,
    model: Annotated[
        str | None, typer.Option(help="The model to serve (default: the configuration's first).")
    ] = None,
    short: Annotated[
        bool, typer.Option(help="The shortest stream that shows every phase.")
    ] = False,
    rate: Annotated[
        float | None, typer.Option(help="Predictions a second of wall time (default 1500).")
    ] = None,
    status: Annotated[
        Path | None, typer.Option(help="Write progress to this JSON file as it goes.")
    ] = None,
) -> None:
    """Serve river's SEA stream with the champion: version 1 trained and registered here,
    calm, a covariate shift, a concept change, then whatever version the trainer promotes
    (until that version served its share, or SIGTERM)."""
    from dataclasses import replace

    from driftline.testing.simulate import Plan
    from driftline.testing.simulate import simulate as run
    from driftline.topics import check_broker

    settings = service_settings(config)
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        name = model or next(iter(settings.models), None)
        if name is None or name not in settings.models:
            raise ConfigError([ConfigProblem("models", f"no model {name!r} to serve")])
        plan = Plan.short() if short else Plan()
        if rate is not None:
            plan = replace(plan, rate=rate)
        check_broker(settings.kafka)
        signal.signal(signal.SIGTERM, stopping)
        signal.signal(signal.SIGINT, stopping)
        result = run(settings, name, plan, status_path=status, stop=stop, say=say)
    except DriftlineError as exc:
        raise fail(exc) from None
    shares = ", ".join(f"{p} {c / n:.3f}" for p, (c, n) in result.correct.items() if n)
    say(f"served {result.sent:,} predictions; accuracy by phase: {shares}")
