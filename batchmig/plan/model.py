"""The plan format, version 1, as pydantic models.

Two layers: the *document* models (``PlanDocument`` and below) mirror the YAML keys
exactly and reject unknown ones, so pydantic's error locations are YAML key paths;
``Plan`` is the resolved, frozen result the engine runs (defaults merged, provider
settings validated by each provider's own model, waves in order). docs/plan-format.md
describes the format for people; ``batchmig schema`` prints it for editors.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema

from batchmig.errors import PlanProblem

_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"  # ASCII digits only: float() also reads Arabic-Indic or full-width digits
_DURATION = re.compile(rf"^ *(?:{_NUMBER} *d)? *(?:{_NUMBER} *h)? *(?:{_NUMBER} *m)? *(?:{_NUMBER} *s)? *$")


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"1h30m"`` or ``"2d"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as '90s', '5m', '2h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip() and (match := _DURATION.match(value)):
        if not any(match.groups()):
            raise ValueError(f"{value!r} is not a duration such as '90s', '5m', '1h30m'")
        days, hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = days * 86400 + hours * 3600 + minutes * 60 + secs
    else:
        raise ValueError(f"{value!r} is not a duration such as '90s', '5m', '1h30m'")
    if not 0 < seconds <= 30 * 86400:
        raise ValueError("a duration must be more than 0 and at most 30 days")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(float, return_type=float),
    WithJsonSchema({
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0, "maximum": 30 * 86400},
            {"type": "string", "pattern": "^(?=.*[0-9])" + _DURATION.pattern.removeprefix("^")},
        ],
        "description": "Seconds, or a string such as '90s', '5m', '1h30m', '2d' (at most 30 days).",
        "examples": ["90s", "5m", "1h30m"],
    }),
]

_PERCENT = re.compile(rf"^ *{_NUMBER} *% *$")


def _parse_budget(value: object) -> object:
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if not match or float(match.group(1)) > 100:
            raise ValueError(f"{value!r} is not a count or a percentage such as '10%'")
        return {"percent": float(match.group(1))}
    return value


class FailureBudget(BaseModel):
    """How many failed instances a wave tolerates before no new instance starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    count: int | None = Field(default=None, ge=0)
    percent: float | None = Field(default=None, ge=0, le=100)

    def allows(self, failed: int, total: int) -> bool:
        if self.count is not None:
            return failed <= self.count
        if self.percent is not None:
            return failed * 100 <= self.percent * total
        return True


Budget = Annotated[
    FailureBudget,
    BeforeValidator(lambda v: {"count": v} if isinstance(v, int) and not isinstance(v, bool) else _parse_budget(v)),
    WithJsonSchema({
        "anyOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": _PERCENT.pattern},
            {"type": "object", "additionalProperties": False,
             "properties": {"count": {"type": "integer", "minimum": 0},
                            "percent": {"type": "number", "minimum": 0, "maximum": 100}}},
        ],
    }),
]

Cutover = Literal["auto", "manual"]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def _id(value: str) -> str:
    if not _ID.match(value):
        raise ValueError("an id starts with a letter or digit and has only letters, digits, '.', '_', ':' "
                         "and '-' (at most 100 characters)")
    return value


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("a name starts with a letter or digit and has only letters, digits, '.', '_' "
                         "and '-' (at most 63 characters)")
    return value


def _version(value: object) -> object:
    if isinstance(value, bool) or value != 1:
        raise ValueError("the format version is the number 1")
    return value


_ENDPOINT_PATTERN = r"^(sandbox|https?://[^\s/@?#]+(/[^\s?#]*)?)$"


def _endpoint(value: str) -> str:
    """A base URL (or 'sandbox'); never one with a user or password in it."""
    if value == "sandbox":
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError:
        raise ValueError("not a URL such as https://host:port or 'sandbox'") from None
    if "@" in parts.netloc:
        raise ValueError("an endpoint URL must not hold a user or password; reference them under credentials:")
    if parts.scheme not in ("http", "https") or not parts.hostname or any(ch.isspace() for ch in value):
        raise ValueError("not a URL such as https://host:port or 'sandbox'")
    if parts.query or parts.fragment:
        raise ValueError("an endpoint is a base URL, without ?query or #fragment")
    return value


def _text(value: str) -> str:
    if not value.isprintable():
        raise ValueError("only printable characters are allowed here (no control or formatting characters)")
    return value


InstanceId = Annotated[
    str,
    AfterValidator(_id),
    Field(description="Unique id: letters, digits, '.', '_', ':' and '-', at most 100 characters."),
]
def is_name(value: object) -> bool:
    """Whether ``value`` is a valid wave or provider configuration name."""
    return isinstance(value, str) and _NAME.match(value) is not None


Name = Annotated[str, AfterValidator(_name)]
ConfigName = Annotated[str, AfterValidator(_name)]
"""A provider configuration's name (a key of ``providers:``), with the rules of a wave name."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfigDoc(Strict):
    """One entry of ``providers:``: how to reach one provider with one identity."""

    type: str | None = Field(
        default=None, description="Provider name (e.g. tencent-sqlserver); defaults to this entry's key."
    )
    region: str = Field(min_length=1, max_length=64, description="Cloud region, e.g. ap-guangzhou.")
    endpoint: Annotated[str, AfterValidator(_endpoint)] | None = Field(
        default=None,
        json_schema_extra={"pattern": _ENDPOINT_PATTERN},
        description="Override of the API endpoint: a base URL, or 'sandbox' (only with run --sandbox).",
    )
    account: str | None = Field(
        default=None, max_length=64, description="Label of the account, for rate-limit keys and reports."
    )
    credentials: dict[str, str] | None = Field(
        default=None,
        description="Credential fields by reference only: '${env:NAME}', '${file:PATH}', or {profile: NAME}. "
        "Omitted: the provider's usual environment variables.",
    )
    rate_limits: dict[str, Annotated[float, Field(gt=0, le=10000)]] = Field(
        default_factory=dict,
        description="Requests per second per action ('*': every action), overriding the provider's defaults.",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Provider-specific options.")


class RetryDoc(Strict):
    """Retry policy for throttled and transient failures."""

    max_attempts: int = Field(default=8, ge=1, le=100, description="Attempts per call, the first included.")
    budget: int = Field(default=10000, ge=0, description="Retries allowed in the whole run.")
    base_delay: Duration = Field(default=0.5, description="First backoff delay; doubles per attempt.")
    max_delay: Duration = Field(default=60.0, description="Longest backoff delay.")


class RunDoc(Strict):
    """Run-wide settings."""

    max_concurrency: int = Field(default=1000, ge=1, le=100000, description="Instances in flight at once.")
    retry: RetryDoc = Field(default_factory=RetryDoc)
    poll_interval: Duration | None = Field(
        default=None, description="Shortest time between two polls of one job (default: the provider's)."
    )
    call_timeout: Duration = Field(default=60.0, description="Timeout of one HTTP request.")


NotifyEvent = Literal["run.started", "run.finished", "wave.finished", "wave.canary_failed", "wave.budget_exhausted",
                      "instance.failed", "cutover.awaiting"]
"""The events a webhook can subscribe to (docs/operations.md, Notifications)."""
NOTIFY_EVENTS: tuple[NotifyEvent, ...] = get_args(NotifyEvent)
_REFERENCE = re.compile(r"^\$\{(env|file):[^}]+\}$")


def _secret_reference(value: str) -> str:
    if not _REFERENCE.match(value.strip()):
        raise ValueError("a secret is given by reference only: '${env:NAME}' or '${file:PATH}'")
    return value


def _url_or_reference(value: str) -> str:
    if not (_REFERENCE.match(value.strip()) or re.match(r"^https?://[^\s]+$", value)):
        raise ValueError("an http(s) URL, or a reference '${env:NAME}' / '${file:PATH}' when the URL is itself "
                         "a secret (as Slack's are)")
    return value


class WebhookDoc(Strict):
    """A webhook told of the run's events: signed JSON, or Slack-compatible text."""

    name: Name = Field(description="Names the webhook in logs and reports (its URL never appears there).")
    url: Annotated[str, AfterValidator(_url_or_reference)] = Field(
        description="http(s) URL, or '${env:NAME}' / '${file:PATH}' when the URL carries a token."
    )
    secret: Annotated[str, AfterValidator(_secret_reference)] | None = Field(
        default=None, description="HMAC-SHA256 key that signs each payload, by reference only ('${env:NAME}')."
    )
    format: Literal["json", "slack"] = Field(
        default="json", description="json: batchmig's versioned payload; slack: {\"text\": ...} for Slack-style hooks."
    )
    events: list[NotifyEvent] = Field(
        default_factory=lambda: list(NOTIFY_EVENTS), min_length=1, description="The events to send (default: all)."
    )
    timeout: Duration = Field(default=5.0, description="Timeout of one delivery attempt.")
    attempts: int = Field(default=3, ge=1, le=10, description="Attempts per event, the first included.")


class DefaultsDoc(Strict):
    """What instances inherit unless they say otherwise."""

    provider: str | None = Field(default=None, description="Default provider configuration name.")
    wave: str | None = Field(default=None, description="Default wave name.")
    cutover: Cutover | None = Field(default=None, description="Default cutover policy: auto or manual.")
    timeouts: dict[str, Duration] = Field(
        default_factory=dict,
        description="Step name, a glob of step names (wait-incremental-*), or 'default' -> timeout."
    )
    estimates: dict[str, Duration] = Field(
        default_factory=dict,
        description="Step name or glob -> typical duration of the cloud's work in that step, for the dry run's "
        "makespan estimate (overrides the provider's own estimates).",
    )
    settings: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Provider name or provider configuration name -> settings every such instance inherits.",
    )


class WaveDoc(Strict):
    """An ordered group of instances."""

    name: Name
    max_concurrency: int | None = Field(default=None, ge=1, le=100000)
    canary: int = Field(default=0, ge=0, description="The first N instances must succeed before the rest start.")
    failure_budget: Budget | None = Field(
        default=None, description="Failed instances tolerated (a count or '10%') before no new instance starts."
    )
    cutover: Cutover | None = None


class InstanceDoc(Strict):
    """One database instance to migrate."""

    id: InstanceId
    provider: str | None = Field(default=None, description="Provider configuration name (from providers:).")
    wave: str | None = None
    cutover: Cutover | None = None
    tags: dict[Annotated[str, AfterValidator(_text)], Annotated[str, AfterValidator(_text)]] = Field(
        default_factory=dict, description="Labels for reports (printable text).")
    timeouts: dict[str, Duration] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict, description="Provider-specific settings.")


class PlanDocument(Strict):
    """A batchmig migration plan (format version 1)."""

    version: Annotated[Literal[1], BeforeValidator(_version)]
    name: Annotated[str, AfterValidator(_text)] | None = Field(default=None, max_length=100)
    providers: dict[ConfigName, ProviderConfigDoc] = Field(min_length=1)
    defaults: DefaultsDoc = Field(default_factory=DefaultsDoc)
    run: RunDoc = Field(default_factory=RunDoc)
    waves: list[WaveDoc] = Field(default_factory=list)
    instances: list[InstanceDoc] = Field(min_length=1)
    notify: list[WebhookDoc] = Field(default_factory=list, description="Webhooks told of the run's events.")


# ----------------------------------------------------------------- resolved plan

DEFAULT_WAVE = "default"


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def step_value(by_step: Mapping[str, float], step: str) -> float | None:
    """The value for ``step`` in a mapping keyed by step names or globs (exact name first)."""
    if step in by_step:
        return by_step[step]
    return next((value for pattern, value in by_step.items()
                 if is_glob(pattern) and fnmatch.fnmatchcase(step, pattern)), None)
DEFAULT_TIMEOUT = 24 * 3600.0


@dataclass(frozen=True)
class PlannedInstance:
    """An instance with everything inherited resolved."""

    index: int
    id: str
    provider: str
    connection: str
    wave: str
    cutover: Cutover
    timeouts: Mapping[str, float]
    tags: Mapping[str, str]
    settings: Any

    def timeout(self, step: str) -> float:
        """The step's own timeout, else the first matching glob (``wait-incremental-*``), else default."""
        if step in self.timeouts:
            return self.timeouts[step]
        for pattern, seconds in self.timeouts.items():
            if is_glob(pattern) and fnmatch.fnmatchcase(step, pattern):
                return seconds
        return self.timeouts.get("default", DEFAULT_TIMEOUT)


@dataclass(frozen=True)
class Wave:
    name: str
    instances: tuple[str, ...]
    max_concurrency: int | None = None
    canary: int = 0
    failure_budget: FailureBudget | None = None


@dataclass(frozen=True)
class Plan:
    """A validated plan, ready to run."""

    path: str
    text: bytes
    document: PlanDocument
    """The plan's sections as validated, without its instances (an empty list: ``instances``
    holds them, resolved)."""
    instances: tuple[PlannedInstance, ...]
    waves: tuple[Wave, ...]
    provider_options: Mapping[str, Any] = field(default_factory=dict)
    locator: Any = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text).hexdigest()

    @property
    def name(self) -> str:
        return self.document.name or self.path.rsplit("/", 1)[-1].removesuffix(".yaml").removesuffix(".yml")

    def has_instance(self, instance_id: str) -> bool:
        return instance_id in self._index

    def instance(self, instance_id: str) -> PlannedInstance:
        return self.instances[self._index[instance_id]]

    @property
    def _index(self) -> dict[str, int]:
        cached = self.__dict__.get("_index_cache")
        if cached is None:
            cached = {inst.id: inst.index for inst in self.instances}
            object.__setattr__(self, "_index_cache", cached)
        return cached

    def locate(self, path: str, message: str) -> PlanProblem:
        """A located problem for a dotted key path such as ``instances.3.settings.bucket``."""
        line, column = self.locator.position(path) if self.locator else (1, 1)
        return PlanProblem(self.path, line, column, path, message)
