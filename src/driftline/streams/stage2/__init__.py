"""Stage 2: merge the pane partials of every source partition, judge windows, publish results.

Two layers (DESIGN §1, STYLE habit 6), one module each:

* :mod:`~driftline.streams.stage2.state`, the pure core: no Kafka, no clock (wall time comes
  in as ``now_ms``), no Prometheus. It keeps the latest partial of each identity, merges the
  partials of a pane (:mod:`~driftline.streams.stage2.panes`) into the model's
  :class:`~driftline.detectors.engine.ModelMonitor`, closes windows on watermarks and idle
  timeouts, and returns the records to publish (:mod:`~driftline.streams.stage2.outputs`).
  Rollout partials and each (champion, challenger) pair's judge are kept apart from the
  monitors (:mod:`~driftline.streams.stage2.rollouts`, :mod:`~driftline.streams.stage2.
  rollout`); what the core did is reported in :mod:`~driftline.streams.stage2.activity`.
* :mod:`~driftline.streams.stage2.published`, the alerts and retrain requests already on
  their topics, read back at start-up and when partitions are gained, never sent again.
* :mod:`~driftline.streams.stage2.agent`, the faust wiring: one agent on the summaries topic
  and one timer feeding one in-memory core per worker process, the records published, bad
  input dead-lettered, what the core did handed to the telemetry.

**State and restarts.** The state lives in memory, per worker process. It is restored by
reading the summaries topic again: the summaries topic is consumed *without committing
offsets*, so every partition this worker is assigned is read from its beginning (the topic's
retention). Partials are cumulative and applied by replacement, so re-reading rebuilds exactly
the state that was lost, and re-reading a partition the worker already held changes nothing.
The replayed windows' metric points are published again (same identities: the InfluxDB writer
overwrites them); their alerts, retrain requests and rollout decisions are not, since a
consumer may act on each (page a person, promote a version):
:mod:`~driftline.streams.stage2.published` reads those topics back and the wiring skips every
record whose id is already there (a rollout decision's id is its pair's). The summaries topic
must therefore retain at least ``monitor.join_ttl`` plus the longest window and its lateness:
a pane whose partials retention has partly deleted would be judged on the rest after a
restart.

faust tables were measured and not used: on Tansu, table recovery stops at the end offsets
that ListOffsets reports, which are wrong there, so a restarted worker silently lost entries
(DESIGN §6).
"""
