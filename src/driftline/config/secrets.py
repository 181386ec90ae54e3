"""Which settings are secrets: the rule for pass-through client keys, and every secret's value.

Typed secrets (``kafka.sasl_password``, ``kafka.ssl_key_password``, ``influxdb.token``) are
:class:`~pydantic.SecretStr` by declaration. Pass-through client settings (``kafka.librdkafka``)
are free-form, so a rule decides by the key (:func:`is_secret_key`) and the settings wrap the
values it picks in :class:`~pydantic.SecretStr` too: from then on ``repr``, ``config show`` and
every ``model_dump`` print them masked, and only :mod:`driftline.kafka_auth` reveals them, to
the client. :func:`secret_values` lists every secret's value for the log redactor
(:func:`driftline.logs.hide`).

The rule, for a key split into words at ``.``, ``_`` and ``-`` (case ignored):

* a secret when the key contains ``secret``, ``password``, ``passwd``, ``passphrase``,
  ``token``, ``credential`` or ``private`` anywhere (``sasl.oauthbearer.client.secret``,
  ``ssl.keystore.password``, ``sasl.oauthbearer.assertion.private.key.pem``), or names a
  configuration string that embeds credentials (``sasl.oauthbearer.config``,
  ``sasl.jaas.config``);
* a secret when one word is ``key``, unless the key only *names* a key or describes how keys are
  handled: a word ``location``, ``file``, ``serializer``, ``deserializer``, ``algorithm`` or
  ``type`` makes it harmless (``ssl.key.location`` is a path, ``key.serializer`` a class name;
  ``ssl.key.pem`` and ``ssl_key`` hold the key itself and are masked).

A harmless value masked by mistake (``sasl.oauthbearer.token.endpoint.url``) costs readability
in ``config show``, never safety; the rule errs that way.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, SecretStr

MASK = "**********"
"""What a secret prints as (pydantic's own mask)."""

MIN_REDACTED = 4
"""Secret values shorter than this are not redacted from free text (logs, error messages):
replacing every ``1`` or ``ab`` in a log would destroy it, and a secret that short protects
nothing. They are still masked where they are printed as settings."""

_ANYWHERE = ("secret", "password", "passwd", "passphrase", "token", "credential", "private")
_CONFIG_STRINGS = {"sasl.oauthbearer.config", "sasl.jaas.config"}
_NAMES_A_KEY = {"location", "file", "serializer", "deserializer", "algorithm", "type"}


def is_secret_key(key: str) -> bool:
    """Whether a pass-through client setting named ``key`` holds a secret (module docstring).

    >>> [is_secret_key(k) for k in ("sasl.oauthbearer.client.secret", "ssl.key.pem",
    ...                             "sasl.password", "ssl_key", "api_token")]
    [True, True, True, True, True]
    >>> [is_secret_key(k) for k in ("ssl.key.location", "key.serializer", "linger.ms",
    ...                             "ssl.keystore.location", "sasl.username")]
    [False, False, False, False, False]
    """
    lowered = key.lower()
    if lowered in _CONFIG_STRINGS or any(word in lowered for word in _ANYWHERE):
        return True
    words = set(re.split(r"[._\-]", lowered))
    return "key" in words and not words & _NAMES_A_KEY


def secret_values(settings: BaseModel) -> set[str]:
    """The value of every secret in a settings tree (nested sections and dicts), revealed.

    >>> from driftline.config.settings import Settings
    >>> sorted(secret_values(Settings(influxdb={"token": "t0ken"},
    ...     kafka={"librdkafka": {"sasl.oauthbearer.client.secret": "TOPSECRET"}})))
    ['TOPSECRET', 't0ken']
    """
    found: set[str] = set()
    _collect(settings, found)
    return found


def _collect(value: object, found: set[str]) -> None:
    if isinstance(value, SecretStr):
        if secret := value.get_secret_value():
            found.add(secret)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _collect(getattr(value, name), found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, found)
