"""Stream wiring: the stage-1 ingest consumer and the stage-2 faust agents (DESIGN §1)."""
