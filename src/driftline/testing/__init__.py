"""Helpers for testing driftline and code that uses it: real servers started on demand."""

from driftline.testing.servers import Series, TansuBroker, VictoriaMetrics, free_port

__all__ = ["Series", "TansuBroker", "VictoriaMetrics", "free_port"]
