"""Loading and checking driftline's configuration.

>>> settings = load_settings(None, topics={"input_partitions": 12})
>>> settings.topics.input_partitions
12
>>> load_settings(None, topics={"input_partitions": 0})
Traceback (most recent call last):
driftline.errors.ConfigError: invalid configuration:
  - topics.input_partitions: Input should be greater than or equal to 1 (given: 0)
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsError,
)

from driftline.config.secrets import MASK, MIN_REDACTED, is_secret_key, secret_values
from driftline.config.settings import (
    DriftSettings,
    Duration,
    InfluxSettings,
    KafkaSettings,
    ModelConfig,
    MonitorSettings,
    PerformanceSettings,
    QualitySettings,
    RegistrySettings,
    RetrainSettings,
    Settings,
    TopicSettings,
    WindowSpec,
    format_duration,
    parse_duration,
)
from driftline.errors import ConfigError, ConfigProblem
from driftline.logs import hide

__all__ = [
    "DriftSettings",
    "Duration",
    "InfluxSettings",
    "KafkaSettings",
    "ModelConfig",
    "MonitorSettings",
    "PerformanceSettings",
    "QualitySettings",
    "RegistrySettings",
    "RetrainSettings",
    "Settings",
    "TopicSettings",
    "WindowSpec",
    "format_duration",
    "is_secret_key",
    "load_settings",
    "masked",
    "parse_duration",
    "secret_values",
    "unknown_variables",
]

CONFIG_ENV = "DRIFTLINE_CONFIG"
TOOL_VARIABLES = frozenset(
    {
        CONFIG_ENV,
        "DRIFTLINE_VENV",
        "DRIFTLINE_TEST_WORKERS",
        "DRIFTLINE_TANSU_BIN",
        "DRIFTLINE_VICTORIA_METRICS_BIN",
        "DRIFTLINE_RELIABILITY_ROWS",
        "DRIFTLINE_RELIABILITY_REPORT",
        "DRIFTLINE_CHROMIUM",
        "DRIFTLINE_DOCS_SCREENSHOT",
        # docker-compose's own (it passes the token on as DRIFTLINE_INFLUXDB__TOKEN).
        "DRIFTLINE_INFLUXDB_TOKEN",
        "DRIFTLINE_INFLUXDB_ORG",
        "DRIFTLINE_INFLUXDB_BUCKET",
    }
)
"""``DRIFTLINE_…`` variables read by driftline's tools (``./dev``, the test fixtures, the
compose file), not settings: :func:`unknown_variables` does not warn about them."""


class _FileSource(PydanticBaseSettingsSource):
    """The YAML file's contents, already read, as the weakest source but defaults."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("file", f"{path} does not exist")]) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem("file", f"cannot read {path}: {exc}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem("file", _yaml_problem(exc))], str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem("file", f"the top level must be a mapping, got {type(data).__name__}")],
            str(path),
        )
    return data


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong with a YAML text, and where, in one line."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return f"not valid YAML: {problem}"
    return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each ``DRIFTLINE_…`` environment variable that names no setting (nor
    one of the tools' own variables): such a variable is ignored, which a typo would make
    silently. Names under a known section are not listed: those are errors already."""
    env = os.environ if environ is None else environ
    settings = list(Settings.model_fields)
    found = []
    for name in sorted(env):
        upper = name.upper()
        if not upper.startswith("DRIFTLINE_") or upper in TOOL_VARIABLES:
            continue
        field = upper.removeprefix("DRIFTLINE_").split("__")[0].lower()
        if field in settings:
            continue
        section = next((f for f in settings if field.startswith(f + "_")), None)
        if section is not None:  # one underscore where the levels want two
            rest = upper.removeprefix(f"DRIFTLINE_{section.upper()}_")
            hint = f"; did you mean DRIFTLINE_{section.upper()}__{rest}?"
        else:
            close = difflib.get_close_matches(field, settings, n=1)
            hint = f"; did you mean DRIFTLINE_{close[0].upper()}?" if close else ""
        found.append(f"{name} names no setting and is ignored{hint}")
    return found


def _variables(env_vars: Mapping[str, str]) -> dict[str, str]:
    """Each settings variable's dotted location (``topics.input_partitions``) to its name."""
    return {
        ".".join(name.upper().removeprefix("DRIFTLINE_").lower().split("__")): name
        for name in env_vars
    }


def _named(problems: list[ConfigProblem], variables: Mapping[str, str]) -> list[ConfigProblem]:
    """``problems`` with the environment variable that set each value, where one did."""
    named = []
    for problem in problems:
        owner = max(
            (
                where
                for where in variables
                if problem.location == where or problem.location.startswith(where + ".")
            ),
            key=len,
            default=None,
        )
        variable = None if owner is None else variables[owner]
        named.append(ConfigProblem(problem.location, problem.message, problem.given, variable))
    return named


def _suggestion(model: type[BaseModel] | None, name: str) -> str:
    if model is None:
        return ""
    close = difflib.get_close_matches(name, list(model.model_fields), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _owner_model(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The settings class that holds the field at ``loc``, to suggest near names."""
    model: Any = Settings
    for part in loc[:-1]:
        if model is None:
            return None
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
            model = dict if annotation is dict[str, ModelConfig] else annotation
        elif model is dict:
            model = ModelConfig
        else:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _problems(exc: ValidationError) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        # pydantic names the union branch it tried (e.g. "constrained-int"); users do not care.
        location = ".".join(str(p) for p in loc if not str(p).startswith(("function-", "lax-")))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown setting" + _suggestion(_owner_model(loc), str(loc[-1]))
        structured = isinstance(err["input"], dict | list)
        silent = structured or err["type"] in ("missing", "extra_forbidden")
        given = None if silent else repr(err["input"])
        if given is not None and _is_secret_location(loc):
            given = MASK
        if given is not None and len(given) > 80:
            given = given[:77] + "..."
        problems.append(ConfigProblem(location or "(top level)", message, given))
    return problems


def _is_secret_location(loc: tuple[int | str, ...]) -> bool:
    """Whether a setting's location names a secret: a secret field, or a pass-through key the
    secret rule picks (:func:`~driftline.config.secrets.is_secret_key`)."""
    return any(isinstance(part, str) and is_secret_key(part) for part in loc)


def load_settings(
    path: Path | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Settings from a YAML file, ``DRIFTLINE_…`` environment variables and ``overrides``.

    ``path`` defaults to ``$DRIFTLINE_CONFIG`` when set. ``environ`` replaces ``os.environ``
    (tests pass their own). Any invalid value raises :class:`ConfigError` naming every
    offending field, its problem and, for unknown keys, the nearest known name.
    """
    env = os.environ if environ is None else environ
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    data = _read_yaml(Path(path)) if path is not None else {}
    env_vars = {
        k: v
        for k, v in env.items()
        if k.upper().startswith("DRIFTLINE_") and k.upper() not in TOOL_VARIABLES
    }

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            from pydantic_settings import EnvSettingsSource

            env_source = EnvSettingsSource(
                settings_cls,
                env_prefix="DRIFTLINE_",
                env_nested_delimiter="__",
                case_sensitive=False,
            )
            env_source.env_vars = {k.lower(): v for k, v in env_vars.items()}
            return init_settings, env_source, _FileSource(settings_cls, data)

    source = str(path) if path is not None else None
    try:
        loaded = _Loaded(**overrides)
    except ValidationError as exc:
        problems = _named(_problems(exc), _variables(env_vars))
        raise ConfigError(problems, source) from None
    except SettingsError as exc:
        # pydantic-settings could not decode a variable holding a whole section (JSON).
        field = re.search(r'field "([^"]+)"', str(exc))
        where = field.group(1) if field else "(environment)"
        variable = _variables(env_vars).get(where)
        problem = ConfigProblem(where, "not valid JSON", variable=variable)
        raise ConfigError([problem], source) from None
    # Hand back the plain Settings type: the subclass only existed to choose the sources.
    settings = Settings.model_construct(
        **{name: getattr(loaded, name) for name in Settings.model_fields}
    )
    # Every secret this process was configured with is redacted from its logs and from the
    # error messages the command line prints, wherever a library might have quoted it.
    hide(v for v in secret_values(settings) if len(v) >= MIN_REDACTED)
    return settings


def masked(settings: Settings) -> dict[str, Any]:
    """The settings as plain JSON-able data with every secret replaced by ``**********``:
    the typed secrets and the pass-through values the secret rule picks
    (:mod:`driftline.config.secrets`).

    >>> masked(Settings(kafka={"librdkafka": {"sasl.oauthbearer.client.secret": "TOPSECRET",
    ...                                       "linger.ms": 5}}))["kafka"]["librdkafka"]
    {'sasl.oauthbearer.client.secret': '**********', 'linger.ms': 5}
    """
    return settings.model_dump(mode="json")
