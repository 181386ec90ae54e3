"""The reference profile of a newly trained version: what "no drift" looks like for it.

A candidate's reference is built from the examples it was trained on: their features, the
candidate's own predictions and scores on them (the distribution it will produce when it
serves the same traffic), and their labels (its baseline performance). Published on the
models topic when the candidate is promoted, it lets the monitor judge the new version from
its first event, as a profile registered with ``driftline reference publish`` does.

Training examples carry no segments, so a candidate's profile tracks none of its own:
:func:`carry_segments` gives it the segment values its parent (or the champion) tracked, so
the new version is sliced as the old one was (docs/statistics.md "Segments").
"""

from __future__ import annotations

from driftline.config.settings import ModelConfig
from driftline.detectors.profile import build_profile
from driftline.schemas.reference import ReferenceProfile
from driftline.trainer.protocol import Examples, FittedModel

__all__ = ["carry_segments", "reference_profile"]


def carry_segments(
    reference: ReferenceProfile, *sources: ReferenceProfile | None
) -> ReferenceProfile:
    """``reference`` tracking the segment values of the first of ``sources`` that tracks
    any (the parent's, then the champion's profile); unchanged when it tracks its own, or
    when none does. The content hash stays: segments are not part of it, as in
    :func:`~driftline.detectors.profile.build_profile`.

    >>> from driftline.detectors.profile import build_profile
    >>> new = build_profile("m", "2", "binary", {"x": [0.0, 1.0]}, ["0", "1"])
    >>> old = build_profile("m", "1", "binary", {"x": [0.0, 1.0]}, ["0", "1"],
    ...                     segments={"region": ["eu", "us"]})
    >>> carry_segments(new, None, old).segments
    {'region': ['eu', 'us']}
    """
    if reference.segments:
        return reference
    for source in sources:
        if source is not None and source.segments:
            tracked = {key: list(values) for key, values in source.segments.items()}
            return reference.model_copy(update={"segments": tracked})
    return reference


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
