"""``driftline report``: one self-contained HTML page of each model's statistics over time.

Drift, performance, labels and data quality per window, with alerts, retrain requests and
model versions marked; from a replay's ``--json`` output (:mod:`driftline.report.data`) or the
service's topics (:mod:`driftline.report.source`), drawn by :mod:`driftline.report.build`.
"""
