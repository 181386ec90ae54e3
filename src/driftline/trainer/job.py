"""One training in a process of its own, stopped when it runs past its timeout.

The trainer agent must never block its event loop, and a training must not be able to take
the agent down with it (a trainer that leaks memory, crashes the interpreter or never
returns). :func:`run_training` therefore runs :func:`~driftline.trainer.candidate.
train_candidate` and the candidate's reference profile in a child process started with
``spawn`` (a fresh interpreter: the agent's threads and sockets are not forked), waits for
its answer at most ``timeout`` seconds, and kills it past that. The agent calls it from a
thread. The child only computes: registering and publishing stay with the agent, so a child
left running by a killed agent (Linux asks the kernel to kill it with its parent) can change
nothing.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from driftline.config.settings import ModelConfig, TrainerSettings
from driftline.errors import TrainingError, TrainingTimeoutError
from driftline.schemas.reference import ReferenceProfile
from driftline.streams.runtime import die_with_parent
from driftline.trainer.candidate import Candidate, train_candidate
from driftline.trainer.evaluation import Evaluation
from driftline.trainer.protocol import Examples
from driftline.trainer.rebaseline import reference_profile
from driftline.trainer.serialise import load

__all__ = ["Trained", "run_training"]


@dataclass(frozen=True)
class Trained:
    """A candidate and the reference profile it would be judged against once it serves
    (its version is a placeholder: the registry stamps the real one)."""

    candidate: Candidate
    reference: ReferenceProfile

    @property
    def evaluation(self) -> Evaluation:
        """The candidate and the champion on the holdout, and whether to promote."""
        return self.candidate.evaluation


def _train(conn: Connection, parent: int, arguments: dict[str, Any]) -> None:
    die_with_parent(parent)
    try:
        candidate = train_candidate(**arguments)
        config: ModelConfig = arguments["config"]
        fitted = load(candidate.model, expected_sha256=candidate.sha256)
        reference = reference_profile(
            arguments["model"], "candidate", config, fitted, candidate.data.train
        )
        conn.send(("ok", Trained(candidate, reference)))
    except BaseException as exc:  # reported to the agent, which records the failure
        where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        at = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
        conn.send(("error", f"{type(exc).__name__}: {exc}{at}"))
    finally:
        conn.close()


def run_training(
    examples: Examples,
    *,
    model: str,
    config: ModelConfig,
    trainer: TrainerSettings,
    onset_ms: int | None,
) -> Trained:
    """Train and judge a candidate for ``model`` in a child process (module docstring).

    Raises :class:`~driftline.errors.TrainingTimeoutError` past ``trainer.timeout``, and
    :class:`~driftline.errors.TrainingError` with the child's error (or its exit status when
    it died without one).
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    arguments = {
        "examples": examples,
        "model": model,
        "config": config,
        "trainer": trainer,
        "onset_ms": onset_ms,
    }
    child = context.Process(
        target=_train, args=(send, os.getpid(), arguments), name=f"driftline-train-{model}"
    )
    child.start()
    send.close()
    timeout = trainer.timeout.total_seconds()
    try:
        if not receive.poll(timeout):
            raise TrainingTimeoutError(
                f"training {model!r} took longer than trainer.timeout ({timeout:g} s); stopped"
            )
        try:
            status, payload = receive.recv()
        except EOFError:
            child.join(5)
            raise TrainingError(
                f"the training process of {model!r} died without an answer"
                f" (exit status {child.exitcode})"
            ) from None
    finally:
        receive.close()
        if child.is_alive():
            child.join(1)
        if child.is_alive():
            child.kill()
            child.join(5)
    if status != "ok":
        raise TrainingError(f"training {model!r} failed: {payload}")
    trained: Trained = payload
    return trained
