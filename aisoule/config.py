"""Settings, read from the environment with the ``AISOULE_`` prefix (pydantic-settings)."""

from __future__ import annotations

import secrets
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET = "change-me"  # noqa: S105 - a sentinel that production refuses


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


def normalize_database_url(url: str) -> str:
    """Accept the plain URLs people paste (``postgresql://``, ``sqlite:///``) and pick our async drivers."""
    for plain, driver in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgresql+psycopg://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AISOULE_", env_file=".env", extra="ignore")

    env: Environment = Environment.development
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    data_dir: Path = Path("./var")
    database_url: str = ""
    database_pool_size: int = Field(default=10, ge=1, le=200)
    secret_key: SecretStr | None = None
    signup_enabled: bool = True
    session_ttl_hours: int = Field(default=24 * 14, ge=1)
    # "auto": Secure cookies when the request came over HTTPS; "always"/"never" force it.
    cookie_secure: str = Field(default="auto", pattern="^(auto|always|never)$")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    log_level: str = "INFO"
    log_json: bool = False
    # How often an API key's last_used_at is written at most (seconds); avoids a write per request.
    api_key_last_used_resolution: int = Field(default=60, ge=1)

    # Redis: shared rate-limit counters across processes and machines. Unset: in-process memory.
    redis_url: str | None = None
    ratelimit_enabled: bool = True
    ratelimit_per_minute: int = Field(default=100, ge=1)  # per API key, rolling 60 s
    ratelimit_per_second: int = Field(default=10, ge=1)  # per API key, rolling 1 s (burst)
    ratelimit_session_per_minute: int = Field(default=600, ge=1)  # per dashboard user
    ratelimit_session_per_second: int = Field(default=30, ge=1)
    # A request refused less than this before a minute slot frees is held and admitted (0: never).
    ratelimit_max_wait_ms: int = Field(default=250, ge=0, le=5000)
    # When the limiter's storage (Redis) is unreachable: admit and log (True) or answer 503 (False).
    ratelimit_fail_open: bool = True
    # Login/sign-up throttling within login_throttle_window_seconds.
    login_max_failures_per_account: int = Field(default=10, ge=1)
    login_max_failures_per_ip: int = Field(default=30, ge=1)
    signup_max_per_ip: int = Field(default=30, ge=1)
    login_throttle_window_seconds: int = Field(default=900, ge=1)

    idempotency_ttl_hours: int = Field(default=24, ge=1)
    # A reservation whose request died is taken over by a retry after this many seconds.
    idempotency_lease_seconds: int = Field(default=60, ge=1)
    # API key usage counters are kept in memory and added to the database this often.
    usage_flush_seconds: float = Field(default=5.0, gt=0)

    # Comma-separated proxy addresses whose X-Forwarded-For/-Proto are trusted ("*" for any).
    trusted_proxies: str = ""
    # Comma-separated origins allowed by CORS; empty: CORS closed.
    cors_origins: str = ""
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    # WhatsApp Cloud API (Graph API). Point whatsapp_graph_url at `aisoule emulator` to test.
    whatsapp_graph_url: str = "https://graph.facebook.com"
    whatsapp_graph_version: str = Field(default="v23.0", pattern=r"^v\d+\.\d+$")
    whatsapp_http_pool_limit: int = Field(default=100, ge=1)  # open connections to Meta
    whatsapp_connect_timeout: float = Field(default=5.0, gt=0)
    whatsapp_read_timeout: float = Field(default=30.0, gt=0)

    @field_validator("database_url")
    @classmethod
    def _normalize(cls, value: str) -> str:
        return normalize_database_url(value) if value else value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'aisoule.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def secret(self) -> str:
        """The server secret: from the environment, or generated once under ``data_dir`` (not in production)."""
        if self.secret_key is not None:
            value = self.secret_key.get_secret_value()
            if self.env == Environment.production and (value == DEFAULT_SECRET or len(value) < 32):
                raise RuntimeError(
                    "AISOULE_SECRET_KEY is the default or shorter than 32 characters; "
                    "refusing to start in production"
                )
            return value
        if self.env == Environment.production:
            raise RuntimeError("AISOULE_SECRET_KEY is not set; refusing to start in production")
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(value + "\n")
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
