"""Why a message goes to the dead-letter topic: every kind a dead letter can carry.

A dead letter's ``driftline.error.kind`` header (:class:`~driftline.schemas.outputs.DeadLetter`)
is one of :data:`KINDS`. ``docs/dead-letters.md`` says, for each, when it happens and what to
do; ``tests/unit/schemas/test_reasons.py`` fails when the code can produce a kind that page does
not list, or the page lists one this registry does not.
"""

from __future__ import annotations

from types import MappingProxyType

# --- input events (stage 1) ---------------------------------------------------------------
MALFORMED_JSON = "malformed_json"
INVALID_EVENT = "invalid_event"
KEY_MISMATCH = "key_mismatch"
MISSING_KEY = "missing_key"
LIMIT_EXCEEDED = "limit_exceeded"
CLOCK_SKEW = "clock_skew"
UNKNOWN_MODEL = "unknown_model"
# --- pane partials (stage 2) --------------------------------------------------------------
INVALID_SUMMARY = "invalid_summary"
PROCESSING_ERROR = "processing_error"
OUTPUT_TOO_LARGE = "output_too_large"
# --- metrics outbox (InfluxDB writer) -----------------------------------------------------
EMPTY_MESSAGE = "empty_message"
NOT_UTF8 = "not_utf8"
MALFORMED_LINE_PROTOCOL = "malformed_line_protocol"
REJECTED = "rejected"
# --- retrain requests (trainer) -----------------------------------------------------------
INVALID_REQUEST = "invalid_request"
INVALID_DECISION = "invalid_decision"

KINDS = MappingProxyType(
    {
        MALFORMED_JSON: "an input message is not JSON, or not UTF-8",
        INVALID_EVENT: "an input event breaks the contract (field, type, range, timestamp)",
        KEY_MISMATCH: "an input message's key differs from its prediction_id",
        MISSING_KEY: "an input message has no key",
        LIMIT_EXCEEDED: "an input message exceeds a bound of monitor.limits",
        CLOCK_SKEW: "an input event is dated beyond the wall clock plus monitor.max_clock_skew",
        UNKNOWN_MODEL: "an input event names a model that models_policy does not admit",
        INVALID_SUMMARY: "a summaries message cannot be decoded or merged by stage 2",
        PROCESSING_ERROR: "an input event (stage 1) or a summaries message (stage 2) failed to "
        "apply on its own, e.g. a regression label that is not a number",
        OUTPUT_TOO_LARGE: "a record stage 2 made, or a warm-up baseline stage 1 built, is "
        "larger than monitor.max_output_bytes",
        EMPTY_MESSAGE: "a metrics outbox message has no value or no lines",
        NOT_UTF8: "a metrics outbox message is not UTF-8",
        MALFORMED_LINE_PROTOCOL: "a metrics outbox message holds malformed line protocol",
        REJECTED: "InfluxDB refused a metrics outbox message's points (400, 413, 422)",
        INVALID_REQUEST: "a message on the retrain topic is not a retrain request",
        INVALID_DECISION: "a message on the rollout topic is not a rollout decision",
    }
)
"""Every dead-letter kind, with when it happens in one line."""
