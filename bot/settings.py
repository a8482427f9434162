"""Settings: one object, loaded once from env vars and an optional feedbackbot.toml, passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

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

    @field_validator("feedback_watch_channels", mode="before")
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
