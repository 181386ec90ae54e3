"""When the InfluxDB writer is unhealthy, and why.

Owns the writer's health check: unhealthy until it is started and its outbox consumer has
polled, once that consumer has not polled for ``stall_after`` seconds, and while writes have
failed without a break for ``unhealthy_after`` seconds (InfluxDB unavailable, or the
dead-letter topic unwritable). The detail says how long, and the last error. The writer tells
it when it polls, when an attempt fails and when a batch gets through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["WriterHealth"]


class WriterHealth:
    """The InfluxDB writer's health: polls, failures, and the limits on both.

    Parameters
    ----------
    unhealthy_after
        Seconds of uninterrupted failures after which the writer is unhealthy.
    stall_after
        Seconds without a poll of the outbox consumer after which the writer is unhealthy.
    wall_clock
        Unix seconds.

    >>> now = [1000.0]
    >>> health = WriterHealth(unhealthy_after=60.0, stall_after=90.0, wall_clock=lambda: now[0])
    >>> health.polled()
    >>> health.failed(ConnectionRefusedError("refused"))
    >>> now[0] += 61
    >>> ok, detail = health.check(started=True, pending=3)
    >>> ok, detail["problem"]
    (False, 'writes have failed for 61 s (limit 60 s); last error: refused')
    """

    def __init__(
        self, unhealthy_after: float, stall_after: float, wall_clock: Callable[[], float]
    ) -> None:
        if not (unhealthy_after > 0 and stall_after > 0):
            raise ValueError(
                f"unhealthy_after and stall_after must be positive seconds, got "
                f"{unhealthy_after} and {stall_after}"
            )
        self.unhealthy_after = unhealthy_after
        self.stall_after = stall_after
        self._wall = wall_clock
        self.last_poll: float | None = None
        self.failing_since: float | None = None
        self.last_error = ""

    def polled(self) -> None:
        """The outbox consumer polled just now."""
        self.last_poll = self._wall()

    def failed(self, error: BaseException) -> None:
        """An attempt failed with ``error``; a run of failures starts now unless one is on."""
        if self.failing_since is None:
            self.failing_since = self._wall()
        self.last_error = str(error)

    def recovered(self) -> None:
        """A batch got through: the run of failures, if any, is over."""
        self.failing_since = None

    def check(self, *, started: bool, pending: int) -> tuple[bool, dict[str, Any]]:
        """Healthy while started, polling, and not failing for longer than ``unhealthy_after``;
        the detail says why not, and ``pending`` (messages of the batch not yet written)."""
        if not started:
            return False, {"part": "writer", "problem": "not started"}
        now = self._wall()
        age = None if self.last_poll is None else now - self.last_poll
        failing = None if self.failing_since is None else now - self.failing_since
        problems = []
        if age is None:
            problems.append("the outbox consumer has not polled yet")
        elif age >= self.stall_after:
            problems.append(
                f"the outbox consumer has not polled for {age:.0f} s (limit {self.stall_after:g} s)"
            )
        if failing is not None and failing >= self.unhealthy_after:
            problems.append(
                f"writes have failed for {failing:.0f} s (limit {self.unhealthy_after:g} s); "
                f"last error: {self.last_error}"
            )
        detail: dict[str, Any] = {
            "part": "writer",
            "seconds_since_poll": None if age is None else round(age, 3),
            "failing_for_seconds": None if failing is None else round(failing, 3),
            "pending": pending,
        }
        if failing is not None:
            detail["last_error"] = self.last_error
        if problems:
            detail["problem"] = "; ".join(problems)
        return not problems, detail
