"""Settings: one TOML file, `${VAR}` expansion, environment overrides, validated at start-up.

Every source is validated against its provider's own settings model, so a typo in a provider key or a source with no
credentials is an error at start-up, not a silent open door at run time.
"""
from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from crm_sync.destinations.base import DestinationSettings
from ingest.config_sections import describe, validate_destinations, validate_sources
from ingest.service_urls import broker_url_problem, database_url_problem, is_amqp, mask_url  # noqa: F401

CONFIG_ENV = "CRM_INGEST_CONFIG"
DEFAULT_CONFIG_PATH = "crm-ingest.toml"
EMBEDDED_BROKER_URL = "filesystem://"
ENV_OVERRIDES = {"DATABASE_URL": "database_url", "BROKER_URL": "broker_url", "CRM_INGEST_ADMIN_TOKEN": "admin_token"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """The configuration cannot be used; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class SourceSettings(BaseModel):
    """What every source has. Providers subclass it with their own credential fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    provider: str
    url_secret: SecretStr | None = None

    @field_validator("url_secret")
    @classmethod
    def _url_secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("url_secret must be at least 16 characters: it is the only thing guarding the URL")
        return value


class EmailMatching(BaseModel):
    """How two written emails are recognised as one mailbox (the contact store's matching key).

    The domain is always case-folded and IDNA-normalised (email-validator). Everything else here is a choice: mail
    systems in practice ignore the local part's case, while `+tags` and dots are only stripped when asked for.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fold_local_part_case: bool = True
    strip_plus_tags: bool = False
    # Domains whose mailboxes ignore dots in the local part, e.g. ["gmail.com", "googlemail.com"].
    dotless_domains: list[str] = Field(default_factory=list)

    @field_validator("dotless_domains")
    @classmethod
    def _lowercase_domains(cls, value: list[str]) -> list[str]:
        return [domain.strip().lower() for domain in value if domain.strip()]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = "sqlite:///var/crm-ingest.db"
    broker_url: str = EMBEDDED_BROKER_URL
    # Prefix for every broker key (Redis), so several deployments or test runs can share one Redis server. RabbitMQ
    # keeps deployments apart by virtual host instead (see _prefix_only_on_redis).
    broker_key_prefix: str = ""
    admin_token: SecretStr | None = None
    data_dir: Path = Path("var")
    default_phone_region: str = "RU"
    # Which of a contact's values is shown first: the first ever seen, or the most recently seen. None is discarded.
    primary_policy: Literal["keep_first", "prefer_newest"] = "keep_first"
    email_matching: EmailMatching = Field(default_factory=EmailMatching)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # Proxies in front of the web (a TLS terminator, a load balancer) whose X-Forwarded-For is trusted for the client
    # address events record: 0 takes the connection's own address, which behind a proxy is the proxy's.
    trusted_proxy_hops: int = Field(default=0, ge=0, le=5)
    # An event still waiting this long after its last enqueue is enqueued again by the relay (lost message, dead worker).
    requeue_after_seconds: float = Field(default=60.0, gt=0)
    relay_interval_seconds: float = Field(default=10.0, gt=0)
    # How often beat wakes the drainer of every destination with deliveries due (retries that fell due, lost wakes).
    delivery_sweep_interval_seconds: float = Field(default=5.0, gt=0)
    # A broker publish from the web process gives up after this long; the relay then takes over.
    publish_timeout_seconds: float = Field(default=1.0, gt=0)
    # The web process's publisher waits this long after an event before it publishes, and sends what gathered
    # meanwhile in one message: it delays the enqueue (never the acknowledgement), and under load it turns a busy
    # second into few, full task messages, each of which costs the broker and a worker far more than an event.
    publish_linger_seconds: float = Field(default=0.05, ge=0, le=1)
    max_process_attempts: int = Field(default=5, ge=1)
    # Logs: "json" (one object per line) or "text"; unset, production commands write JSON and `dev` text.
    log_format: Literal["json", "text"] | None = None
    # Mask emails, phone numbers and message text in every log line; false only to debug, never in production.
    log_redaction: bool = True
    # Raw requests of finished events older than this many days are purged daily by beat (metadata kept). Off: None.
    retention_days: int | None = Field(default=None, ge=1)
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    destinations: dict[str, DestinationSettings] = Field(default_factory=dict)

    @field_validator("database_url", "broker_url")
    @classmethod
    def _a_service_we_can_use(cls, value: str, info: ValidationInfo) -> str:
        """Only the scheme is ever named in a problem: the URL may carry a password."""
        problem = (database_url_problem if info.field_name == "database_url" else broker_url_problem)(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("broker_key_prefix")
    @classmethod
    def _prefix_only_on_redis(cls, value: str, info: ValidationInfo) -> str:
        """Refused rather than ignored: two deployments on one vhost would process each other's event ids."""
        if value and is_amqp(info.data.get("broker_url", "")):
            raise ValueError("broker_key_prefix applies to Redis only: on RabbitMQ give each deployment a virtual "
                             "host of its own (amqp://user:pass@host:5672/<vhost>) and leave the prefix empty")
        return value

    @field_validator("default_phone_region")
    @classmethod
    def _region_is_iso(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{2}", value):
            raise ValueError("default_phone_region must be a two-letter ISO country code such as RU or US")
        return value

    @property
    def uses_embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    def source(self, name: str) -> SourceSettings | None:
        return self.sources.get(name)

    def destination(self, name: str) -> DestinationSettings | None:
        return self.destinations.get(name)


def expand_env(value: Any, env: Mapping[str, str], where: str, problems: list[str]) -> Any:
    """Replace `${VAR}` in every string value; an unset variable is a problem, not an empty string."""
    if isinstance(value, str):
        def substitute(match: re.Match[str]) -> str:
            var = match.group(1)
            if var not in env:
                problems.append(f"{where}: environment variable {var} is not set")
                return ""
            return env[var]
        return _VAR.sub(substitute, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env, f"{where}.{k}" if where else k, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    return value


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(CONFIG_ENV, DEFAULT_CONFIG_PATH))


def load_settings(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (absent file = all defaults), expand variables, apply overrides, validate."""
    env = os.environ if env is None else env
    path = Path(path) if path is not None else config_path(env)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None
    return settings_from_dict(raw, env)


def configured_data_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """The configuration's data_dir, read before the rest is validated: validating the sources imports their
    provider modules, and with them prometheus_client, which must find the web's metrics folder already set (see
    workers.web.prepare_metrics_dir). None if the file cannot be read; loading the settings then says why."""
    value = _configured_string("data_dir", os.environ if env is None else env)
    return Path(value) if value is not None else None


def configured_database_url(env: Mapping[str, str] | None = None) -> str | None:
    """The configuration's database_url (DATABASE_URL before it), read as configured_data_dir reads data_dir: for
    `crm-ingest web` to find a missing SQLite database before it prepares its metrics folder."""
    env = os.environ if env is None else env
    return env.get("DATABASE_URL") or _configured_string("database_url", env)


def _configured_string(key: str, env: Mapping[str, str]) -> str | None:
    """A top-level string of the configuration file (or its default), variables expanded; None if it cannot be
    read."""
    path = config_path(env)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except tomllib.TOMLDecodeError:
        return None
    problems: list[str] = []
    value = expand_env(raw.get(key, str(Settings.model_fields[key].default)), env, key, problems)
    return value if isinstance(value, str) and not problems else None


def settings_from_dict(raw: dict[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    problems: list[str] = []
    data = expand_env(raw, env, "", problems)
    for var, key in ENV_OVERRIDES.items():
        if env.get(var):
            data[key] = env[var]
    sources = validate_sources(data.pop("sources", {}) or {}, problems)
    destinations = validate_destinations(data.pop("destinations", {}) or {}, problems)
    try:
        settings = Settings(**data, sources={}, destinations={})
    except ValidationError as exc:
        problems.extend(describe(exc, ""))
        settings = None
    if problems:
        raise ConfigError(problems)
    return settings.model_copy(update={"sources": sources, "destinations": destinations})
