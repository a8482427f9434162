"""Settings: one object, loaded once from env vars and an optional feedbackbot.toml, passed down."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

SLACK_DEFAULT_API_URL = "https://slack.com/api/"


def _config_file() -> Path:
    """The TOML file is optional; FEEDBACKBOT_CONFIG points elsewhere for tests and deployments."""
    return Path(os.environ.get("FEEDBACKBOT_CONFIG", "feedbackbot.toml"))


class ThemeSetting(BaseModel):
    """One theme of the taxonomy as written in feedbackbot.toml ([[feedback_themes]])."""

    name: str
    description: str = ""
    examples: list[str] = Field(default_factory=list)


_WINDOW = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)-([01]?\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class QuietHours:
    """`20:00-08:00,weekends`: local times when customers are not messaged; empty means always allowed."""

    windows: tuple[tuple[int, int], ...] = ()
    weekends: bool = False

    @classmethod
    def parse(cls, spec: str) -> QuietHours:
        """Comma-separated `HH:MM-HH:MM` windows (may wrap midnight) and the word `weekends`."""
        windows, weekends = [], False
        for part in (p.strip().lower() for p in spec.split(",")):
            if not part:
                continue
            if part in ("weekend", "weekends"):
                weekends = True
                continue
            m = _WINDOW.match(part)
            if not m or m.group(1, 2) == m.group(3, 4):
                raise ValueError(f"FEEDBACK_QUIET_HOURS: {part!r} is not HH:MM-HH:MM or 'weekends'")
            h1, m1, h2, m2 = (int(g) for g in m.groups())
            windows.append((h1 * 60 + m1, h2 * 60 + m2))
        return cls(tuple(windows), weekends)

    def _quiet_until(self, local: datetime) -> datetime | None:
        """The end of the quiet spell `local` is in (local time), or None when messages may go now."""
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.weekends and local.weekday() >= 5:
            return midnight + timedelta(days=7 - local.weekday())
        minute = local.hour * 60 + local.minute
        for start, end in self.windows:
            inside = start <= minute < end if start < end else (minute >= start or minute < end)
            if inside:
                day = midnight if minute < end else midnight + timedelta(days=1)
                return day + timedelta(minutes=end)
        return None

    def next_allowed(self, now: datetime, tz: str) -> datetime:
        """The first moment at or after `now` (naive UTC) outside quiet hours in `tz`, as naive UTC."""
        zone = ZoneInfo(tz)
        local = now.replace(tzinfo=ZoneInfo("UTC")).astimezone(zone)
        for _ in range(16):  # windows and weekends chain at most a few times
            until = self._quiet_until(local)
            if until is None:
                break
            local = until.replace(tzinfo=None).replace(tzinfo=zone)  # wall time, re-resolved (DST)
        return local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


DEFAULT_TEMPLATES = {
    "update": (
        "Hi {name}, a quick update on your request{quote}: our team has started working on {title}. "
        "We'll let you know here as soon as it ships."
    ),
    "resolution": "Good news, {name}: {title} is now live. Thanks again for asking for it{quote}!",
    "canceled": (
        "Hi {name}, about your request{quote}: we've decided not to build {title} for now. "
        "Thank you for telling us; it helps us decide what to work on, and we'll let you know if that changes."
    ),
}
TEMPLATE_FIELDS = frozenset({"name", "title", "quote"})
LOOP_STAGES = ("update", "resolution", "canceled")

NPS_TEMPLATES = {
    "question": "How likely are you to recommend {product} to a colleague?",
    "reason": "What's the main reason for your score?",
    "confirmation": "Thanks for your answer, {name}. We read every one.",
    "reminder": "Hi {name}, you gave {product} a {score}. What's the main reason for your score? It helps us most.",
    "promoter": (
        "Thanks again, {name}! If you have a minute, a short review or a word to a colleague who could use "
        "{product} would mean a lot to us. Would you also be up for a short case study?"
    ),
    "passive": (
        "Thanks, {name}. Based on what you told us, this might help: {link}. If a 20-minute call to go through it "
        "would be useful, reply here and we'll set it up."
    ),
}
NPS_FIELDS = frozenset({"name", "product", "score", "link"})


def _templates(value: dict[str, str], setting: str, defaults: dict[str, str], fields: frozenset[str]) -> dict[str, str]:
    """The defaults overlaid with the configured wording; an unknown kind or placeholder is a start-up error."""
    out = dict(defaults)
    for kind, text in value.items():
        if kind not in defaults:
            raise ValueError(f"{setting}: unknown message kind {kind!r} ({', '.join(defaults)})")
        try:
            text.format_map({f: "" for f in fields})
        except (KeyError, ValueError, IndexError) as exc:
            raise ValueError(f"{setting}.{kind}: {exc!r}; use {sorted(fields)}") from exc
        out[kind] = text
    return out


class Settings(BaseSettings):
    """Every knob of the bot; env var names (upper-case field names) are the public contract."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", env_ignore_empty=True)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = SLACK_DEFAULT_API_URL
    database_url: str = "sqlite:///./feedback.db"
    feedback_triage_channel: str | None = None
    feedback_watch_channels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    feedback_emoji: str = "feedback"
    feedback_type_emoji: dict[str, str] = Field(
        default_factory=lambda: {"bug": "Bug", "bulb": "Feature request", "question": "Question"}
    )
    feedback_receipt: Literal["reaction", "reply", "off"] = "reaction"
    feedback_receipt_emoji: str = "eyes"
    feedback_receipt_text: str = "Thanks, passed to the product team."
    feedback_max_text: int = 40_000
    channel_cache_seconds: int = 3600
    feedback_noise_threshold: float = 0.2
    feedback_duplicate_threshold: float = 0.9
    feedback_similar_min: float = 0.5
    feedback_type_examples: dict[str, list[str]] = Field(default_factory=dict)
    feedback_themes: list[ThemeSetting] = Field(default_factory=list)
    feedback_embed_backend: Literal["auto", "onnx", "onnx-int8", "torch"] = "auto"
    feedback_suggestions: bool = True
    model_wait_seconds: float = 120.0
    feedback_staff_usergroup: str | None = None
    linear_api_key: SecretStr | None = None
    linear_api_url: str = "https://api.linear.app/graphql"
    linear_team_id: str | None = None
    linear_labels: dict[str, str] = Field(default_factory=dict)
    outbox_max_attempts: int = 8
    worker_poll_seconds: float = 0.5
    worker_concurrency: int = Field(default=16, ge=1, le=64)
    outbox_lease_seconds: float = Field(default=15.0, ge=2.0)
    slack_timeout_seconds: float = Field(default=5.0, gt=0)
    linear_timeout_seconds: float = Field(default=10.0, gt=0)
    feedback_embed_threads: int = Field(default=1, ge=1, le=64)
    feedback_embed_spinning: bool = False
    feedback_burst_seconds: float = Field(default=0.0, ge=0)
    linear_webhook_secret: SecretStr | None = None
    feedback_close_loop: Literal["approve", "auto", "off"] = "approve"
    feedback_linear_poll_seconds: float = Field(default=300.0, ge=10)
    feedback_loop_states: dict[str, str] = Field(
        default_factory=lambda: {"started": "update", "completed": "resolution", "canceled": "canceled"}
    )
    feedback_templates: dict[str, str] = Field(default_factory=dict)
    feedback_quiet_hours: str = ""
    feedback_tz: str = "UTC"
    feedback_triage_sla_hours: float = Field(default=48.0, gt=0)
    feedback_loop_sla_days: float = Field(default=3.0, gt=0)
    feedback_scheduler_lock: str | None = None
    feedback_digest_channel: str | None = None
    feedback_digest_cron: str = "0 9 * * mon"
    feedback_monthly_cron: str = "0 9 1 * *"
    feedback_quarterly_cron: str = "0 9 1 1,4,7,10 *"
    feedback_train_cron: str = ""  # e.g. "0 3 * * sun": fine-tune weekly once 50 new labels exist ("" = off)
    feedback_report_grace_hours: float = Field(default=96.0, gt=0)
    feedback_stalled_days: float = Field(default=3.0, gt=0)
    nps_surveys: bool = True
    nps_product: str | None = None
    nps_channel: Literal["dm", "shared"] = "dm"
    nps_min_tenure_days: float = Field(default=30.0, ge=0)
    nps_interval_days: float = Field(default=90.0, gt=0)
    nps_retry_days: float = Field(default=30.0, gt=0)
    nps_ticket_quiet_days: float = Field(default=14.0, ge=0)
    nps_per_quarter: int = Field(default=1, ge=1)
    nps_sample_percent: float = Field(default=100.0, ge=0, le=100)
    nps_daily_cap: int = Field(default=200, ge=0)
    nps_heads_up_days: float = Field(default=7.0, ge=0)
    nps_milestones: Annotated[list[str], NoDecode] = Field(default_factory=list)
    nps_ticket_events: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["support_ticket"])
    nps_reminder_hours: float = Field(default=24.0, gt=0)
    nps_followup: Literal["approve", "auto"] = "approve"
    nps_followup_hours: float = Field(default=48.0, gt=0)
    nps_resources: dict[str, str] = Field(default_factory=dict)
    nps_templates: dict[str, str] = Field(default_factory=dict)
    nps_alert_below: float = Field(default=30.0, ge=-100, le=100)
    nps_checkins: Literal["owner", "post", "off"] = "owner"
    nps_checkin_features: Annotated[list[str], NoDecode] = Field(default_factory=list)
    feedback_events_secret: SecretStr | None = None

    @field_validator(
        "feedback_watch_channels", "nps_milestones", "nps_ticket_events", "nps_checkin_features", mode="before"
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        """Env vars carry lists as comma-separated ids."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("slack_api_url", mode="after")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        """slack_sdk joins method names onto the base URL: without the slash `/api` would be dropped."""
        return value if value.endswith("/") else value + "/"

    @field_validator("feedback_type_emoji", mode="after")
    @classmethod
    def _type_emoji(cls, value: dict[str, str]) -> dict[str, str]:
        """Keys lose their colons; values must name a feedback type, so a typo fails at start, not on a click."""
        types = {
            t.casefold(): t for t in ("Bug", "Feature request", "UX issue", "Praise", "Content/data issue", "Question")
        }
        out = {}
        for emoji, kind in value.items():
            if kind.casefold() not in types:
                raise ValueError(f"FEEDBACK_TYPE_EMOJI: {kind!r} is not a feedback type ({', '.join(types.values())})")
            out[emoji.strip().strip(":")] = types[kind.casefold()]
        return out

    @field_validator("feedback_loop_states", mode="after")
    @classmethod
    def _loop_states(cls, value: dict[str, str]) -> dict[str, str]:
        """Keys are Linear state types or names (any case); values must be a loop message kind."""
        bad = {k: v for k, v in value.items() if v not in LOOP_STAGES}
        if bad:
            raise ValueError(f"FEEDBACK_LOOP_STATES: {bad} map to no message kind ({', '.join(LOOP_STAGES)})")
        return {k.strip().casefold(): v for k, v in value.items()}

    @field_validator("feedback_templates", mode="after")
    @classmethod
    def _templates(cls, value: dict[str, str]) -> dict[str, str]:
        """A template names only known placeholders, so a typo fails at start, not when a customer waits."""
        return _templates(value, "feedback_templates", DEFAULT_TEMPLATES, TEMPLATE_FIELDS)

    @field_validator("nps_templates", mode="after")
    @classmethod
    def _nps_templates(cls, value: dict[str, str]) -> dict[str, str]:
        """NPS wording: known kinds and placeholders only, so a typo fails at start."""
        return _templates(value, "nps_templates", NPS_TEMPLATES, NPS_FIELDS)

    @field_validator("feedback_tz", mode="after")
    @classmethod
    def _tz(cls, value: str) -> str:
        """An unknown zone fails at start."""
        try:
            ZoneInfo(value)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"FEEDBACK_TZ: unknown time zone {value!r}") from exc
        return value

    @field_validator("feedback_digest_cron", "feedback_monthly_cron", "feedback_quarterly_cron", mode="after")
    @classmethod
    def _cron(cls, value: str) -> str:
        """Five crontab fields (minute hour day month weekday), checked at start."""
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a crontab expression (minute hour day month weekday): {exc}") from exc
        return value

    @field_validator("feedback_quiet_hours", mode="after")
    @classmethod
    def _quiet(cls, value: str) -> str:
        """Parsed once here, so a malformed window fails at start."""
        QuietHours.parse(value)
        return value

    @field_validator("feedback_emoji", "feedback_receipt_emoji", mode="after")
    @classmethod
    def _strip_colons(cls, value: str) -> str:
        """People write `:feedback:`; Slack events carry `feedback`."""
        return value.strip().strip(":")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: explicit arguments, then env vars, then feedbackbot.toml."""
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    def digest_channel(self) -> str | None:
        """FEEDBACK_DIGEST_CHANNEL, else the triage channel."""
        return self.feedback_digest_channel or self.feedback_triage_channel

    def quiet_hours(self) -> QuietHours:
        """FEEDBACK_QUIET_HOURS parsed (validated at load)."""
        return QuietHours.parse(self.feedback_quiet_hours)

    def ref_secret(self) -> str:
        """Key for the MAC on card button values: the signing secret, else the bot token."""
        for secret in (self.slack_signing_secret, self.slack_bot_token, self.slack_app_token):
            if secret is not None:
                return secret.get_secret_value()
        return "feedbackbot-local"

    def linear_ready(self) -> bool:
        """Routing to Linear needs an API key and a team."""
        return self.linear_api_key is not None and bool(self.linear_team_id)

    def missing_slack_settings(self, *, socket_mode: bool) -> list[str]:
        """Names the env vars `run` needs and lacks, so the error message can list them."""
        missing = []
        if self.slack_bot_token is None:
            missing.append("SLACK_BOT_TOKEN")
        if not socket_mode and self.slack_signing_secret is None:
            missing.append("SLACK_SIGNING_SECRET")
        if self.feedback_triage_channel is None:
            missing.append("FEEDBACK_TRIAGE_CHANNEL")
        return missing
