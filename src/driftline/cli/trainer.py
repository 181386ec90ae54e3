"""``driftline trainer``: run the retraining agent that closes the loop."""

from __future__ import annotations

import typer

from driftline.cli._common import ConfigFile, fail
from driftline.cli._service import service_settings, startup_checks
from driftline.errors import DriftlineError, RegistryError, TopicError

app = typer.Typer(help="The retraining agent that closes the loop.", no_args_is_help=True)


@app.command("run")
def trainer_run(config: ConfigFile = None) -> None:
    """Run the trainer agent: retrain requests in; candidates trained on the joined
    examples, judged against the champion, registered, promoted; outcomes on the training
    topic (until SIGTERM)."""
    from driftline.streams.stage2.agent import run_app
    from driftline.topics import missing_topics
    from driftline.trainer.agent import KafkaPublisher, create_app
    from driftline.trainer.examples import ExampleStore
    from driftline.trainer.feed import LabeledFeed
    from driftline.trainer.handler import RequestHandler
    from driftline.trainer.protocol import load_trainer
    from driftline.trainer.registry import FileSystemRegistry
    from driftline.trainer.rollout import RolloutHandler

    settings = service_settings(config)
    store = feed = None
    try:
        for name, model in settings.models.items():  # a trainer that cannot load: say so now
            load_trainer(
                model.training.trainer, model.task, field=f"models.{name}.training.trainer"
            )
        startup_checks(settings, stage2=True)
        missing = missing_topics(
            settings.kafka,
            [
                settings.topics.retrain,
                settings.topics.training,
                settings.topics.labeled,
                settings.topics.models,
                settings.topics.rollout,
                settings.topics.dlq,
            ],
        )
        if missing:
            raise TopicError(
                f"topic(s) {', '.join(missing)} do not exist: run driftline topics create"
            )
        try:  # the trainer owns the registry: its root is made here, not by hand
            settings.registry.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(
                f"registry.root: cannot create it: {exc}", path=exc.filename
            ) from None
        store = ExampleStore.from_settings(settings.trainer, settings.monitor.limits.limits())
        feed = LabeledFeed(settings, store).start()
        publisher = KafkaPublisher(settings)
        handler = RequestHandler(
            settings,
            registry=FileSystemRegistry(settings.registry.root),
            store=store,
            feed=feed,
            publisher=publisher,
        )
        rollout = RolloutHandler(registry=handler.registry, publisher=publisher)
        app = create_app(settings, handler, publisher, rollout=rollout)
        run_app(app, override_logging=False)
    except DriftlineError as exc:
        raise fail(exc) from None
    finally:
        if feed is not None:
            feed.close()
        if store is not None:
            store.close()
