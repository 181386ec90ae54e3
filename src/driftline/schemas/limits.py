"""The bounds on what one input event may hold: bytes, counts and string lengths.

Every resource a producer can grow is bounded (DESIGN §2): a message's size, its features,
classes and segments, and the length of every string it carries. The bounds are settings
(``monitor.limits``, :class:`~driftline.config.settings.LimitsSettings`); this module holds
their defaults and names, below the configuration, so the contract's decoders
(:mod:`driftline.schemas.wire`, :mod:`driftline.schemas.events`) can enforce them and say
which setting an event broke.
"""

from __future__ import annotations

from typing import NamedTuple

SETTINGS_PATH = "monitor.limits"
"""Where the limits live in the configuration (named in every dead letter they cause)."""


class Limits(NamedTuple):
    """How large one input event may be; what exceeds a bound is dead-lettered.

    >>> Limits().max_features, Limits(max_features=5).max_features
    (1000, 5)
    >>> Limits().setting("max_features")
    'monitor.limits.max_features'
    """

    max_message_bytes: int = 262_144
    """A message's value, in bytes, checked before it is decoded."""
    max_features: int = 1000
    """Entries of ``features``."""
    max_classes: int = 1000
    """Entries of ``scores`` (one per class)."""
    max_segments: int = 16
    """Entries of ``segments``."""
    max_id_length: int = 256
    """Characters of ``event_id`` and ``prediction_id``."""
    max_name_length: int = 256
    """Characters of ``model`` and ``model_version``."""
    max_feature_name_length: int = 256
    """Characters of a feature's name and of a segment's name."""
    max_string_length: int = 1024
    """Characters of a string value: a feature's, a segment's, a prediction, a label, a class
    name in ``scores``."""

    def setting(self, name: str) -> str:
        """The dotted configuration path of bound ``name``."""
        return f"{SETTINGS_PATH}.{name}"


DEFAULT_LIMITS = Limits()
"""The limits of a default configuration: those the public contract (the pydantic events and
their JSON Schemas) states."""
