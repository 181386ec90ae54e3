"""Trainers for the trainer agent's tests, loaded by import path from a model's
``training.trainer`` setting (in the agent's child process, so they must be importable)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from driftline.schemas.events import Task
from driftline.trainer.builtin import RiverTrainer
from driftline.trainer.protocol import Examples, FeatureValue, FittedModel, Label


class SlowTrainer(RiverTrainer):
    """The default trainer, after eight seconds of pretending to work (time to kill it)."""

    def fit(self, examples: Examples) -> FittedModel:
        time.sleep(8.0)
        return super().fit(examples)


class RaisingTrainer:
    """A trainer whose fit fails."""

    def __init__(self, task: Task) -> None:
        self.task = task

    def fit(self, examples: Examples) -> FittedModel:
        raise RuntimeError(f"cannot fit {len(examples)} examples: the GPU is on fire")


class HangingTrainer:
    """A trainer that never returns (the agent's timeout stops it)."""

    def __init__(self, task: Task) -> None:
        self.task = task

    def fit(self, examples: Examples) -> FittedModel:
        while True:
            time.sleep(1.0)


class _Constant:
    def __init__(self, label: Label) -> None:
        self.label = label

    def predict(self, rows: Sequence[Mapping[str, FeatureValue]]) -> list[Label]:
        return [self.label for _ in rows]

    def predict_scores(self, rows: Sequence[Mapping[str, FeatureValue]]) -> list[dict[str, float]]:
        return [{str(self.label): 1.0} for _ in rows]

    def params(self) -> dict[str, Any]:
        return {"constant": self.label}


class LosingTrainer:
    """A trainer whose model always predicts class 0: it loses to any sensible champion."""

    def __init__(self, task: Task) -> None:
        self.task = task

    def fit(self, examples: Examples) -> FittedModel:
        return _Constant(0)
