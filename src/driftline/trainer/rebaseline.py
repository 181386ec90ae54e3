"""The reference profile of a newly trained version: what "no drift" looks like for it.

A candidate's reference is built from the examples it was trained on: their features, the
candidate's own predictions and scores on them (the distribution it will produce when it
serves the same traffic), and their labels (its baseline performance). Published on the
models topic when the candidate is promoted, it lets the monitor judge the new version from
its first event, as a profile registered with ``driftline reference publish`` does.
"""

from __future__ import annotations

from driftline.config.settings import ModelConfig
from driftline.detectors.profile import build_profile
from driftline.schemas.reference import ReferenceProfile
from driftline.trainer.protocol import Examples, FittedModel

__all__ = ["reference_profile"]


def reference_profile(
    model: str, version: str, config: ModelConfig, fitted: FittedModel, train: Examples
) -> ReferenceProfile:
    """The reference of ``fitted`` (version ``version`` of ``model``), from its training
    examples ``train``.

    >>> from driftline.trainer.builtin import RiverTrainer
    >>> from driftline.trainer.protocol import Example
    >>> rows = Examples.of(Example(str(i), i, {"x": float(i % 10)}, int(i % 10 > 4), "1")
    ...                    for i in range(600))
    >>> fitted = RiverTrainer("binary").fit(rows)
    >>> profile = reference_profile("m", "2", ModelConfig(task="binary"), fitted, rows)
    >>> profile.model_version, sorted(profile.features), profile.n_rows
    ('2', ['x'], 600)
    """
    names = train.feature_names()
    rows = train.features
    columns = {name: [row.get(name) for row in rows] for name in names}
    predictions = fitted.predict(rows)
    scored = fitted.predict_scores(rows)
    scores = None
    if scored is not None:
        classes = sorted({c for row in scored for c in row})
        scores = {c: [row.get(c, 0.0) for row in scored] for c in classes}
    return build_profile(
        model,
        version,
        config.task,
        columns,
        list(predictions),
        scores=scores,
        labels=list(train.labels),
        feature_types=dict(config.features) or None,
        bins=config.drift.bins,
        positive_class=config.positive_class,
        multivariate=config.drift.multivariate,
    )
