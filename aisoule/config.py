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
    # PostgreSQL connections each process keeps open, and how many more it may open for a burst.
    # Overflow connections are closed again when returned, so a load above the pool size makes
    # the process connect and disconnect all the time (each connection is a PostgreSQL process
    # fork): size the pool for the concurrency a process serves and keep the overflow small.
    database_pool_size: int = Field(default=20, ge=1, le=200)
    database_max_overflow: int = Field(default=0, ge=0, le=200)
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
    # Remember looked-up API keys per process while a LISTEN connection announces changes
    # (PostgreSQL only; see aisoule/api_keys/cache.py). Turn off behind a transaction-pooling
    # PgBouncer, where LISTEN does not work.
    api_key_cache: bool = True

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
    # argon2id's cost for passwords: argon2-cffi's defaults (RFC 9106's low-memory profile).
    # Lower it only for a small machine (OWASP's floor: 19 MiB, 2 passes, 1 lane) or for tests.
    password_hash_time_cost: int = Field(default=3, ge=1, le=10)
    password_hash_memory_kib: int = Field(default=65536, ge=8192, le=1048576)
    password_hash_parallelism: int = Field(default=4, ge=1, le=16)

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
    # Where the npm-installed browser assets of /docs and /redoc are (a node_modules folder holding
    # swagger-ui-dist and redoc). Unset: the source checkout's node_modules (`make run` fills it).
    assets_dir: Path | None = None

    # WhatsApp Cloud API (Graph API). Point whatsapp_graph_url at `aisoule emulator` to test.
    whatsapp_graph_url: str = "https://graph.facebook.com"
    whatsapp_graph_version: str = Field(default="v23.0", pattern=r"^v\d+\.\d+$")
    whatsapp_http_pool_limit: int = Field(default=100, ge=1)  # open connections to Meta
    whatsapp_connect_timeout: float = Field(default=5.0, gt=0)
    whatsapp_read_timeout: float = Field(default=30.0, gt=0)

    # Outbound HTTP to URLs users supply (media links; see docs/security.md "Outbound HTTP"):
    # private, loopback and link-local addresses are refused unless a network listed here (comma-
    # separated CIDRs, e.g. "10.20.0.0/16,192.168.1.7") admits them. The emulator's own URL is
    # always admitted; nothing else of its host is.
    http_allow_private_networks: str = ""
    # The whole exchange with such a URL, redirects included, takes at most this long.
    http_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    # Public base URL of this server (for the webhook URL shown to users). Default: host and port.
    public_url: str | None = None
    # Meta app secret used to verify webhooks when an account has none of its own.
    whatsapp_app_secret: SecretStr | None = None
    # Verify token Meta's subscription handshake may use when an account has none of its own.
    whatsapp_verify_token: SecretStr | None = None

    # The bundled emulator. "embedded" serves it inside this server at /emulator (the embedded
    # default, outside production); a URL points at a separate `aisoule emulator`; "off" disables it.
    emulator: str = ""
    # Every new workspace gets a sandbox account on the emulator (default: on outside production).
    sandbox_accounts: bool | None = None

    # Background work (taskiq). "inprocess": the server runs the tasks itself (embedded default);
    # "external": tasks go to a broker (Redis Streams at task_broker_url, default redis_url) and
    # `aisoule worker` processes run them.
    worker_mode: str = Field(default="inprocess", pattern="^(inprocess|external)$")
    task_broker_url: str | None = None
    # How often the reconciler re-queues work a crash or a lost queue left behind (seconds).
    reconcile_seconds: float = Field(default=5.0, gt=0)
    # Sends retried on retryable Meta errors at most this many times (exponential backoff).
    send_max_attempts: int = Field(default=5, ge=1, le=50)
    # Backoff of a retried send: base * 2^(attempt - 1) seconds, at most the max, with jitter.
    send_backoff_base_seconds: float = Field(default=1.0, gt=0, le=60)
    send_backoff_max_seconds: float = Field(default=300.0, gt=0, le=3600)
    # Meta's per-user marketing limit (131049): retried no sooner than 24 h, this many times.
    marketing_limit_retries: int = Field(default=1, ge=0, le=10)
    # Meta's pair rate: about one message every pair_period_seconds from a number to the same
    # person (131056 beyond). Sends beyond pair_burst in a row are deferred, not attempted.
    pair_period_seconds: float = Field(default=6.0, ge=0, le=3600)
    pair_burst: int = Field(default=1, ge=1, le=45)
    # Redis Streams task broker: the stream is capped at about this many entries (XADD MAXLEN ~),
    # and a task a worker took but did not acknowledge within task_idle_seconds (it died) is
    # reclaimed by another worker. Longer than the longest task, or a live one is run twice.
    task_stream_maxlen: int = Field(default=100_000, ge=1000)
    task_idle_seconds: int = Field(default=600, ge=30)

    # -- campaigns (docs/campaigns.md) ------------------------------------------------------------
    # A scheduled campaign whose time passed by more than this while no server ran is not started
    # but marked failed (stale_schedule).
    campaign_stale_schedule_hours: float = Field(default=6.0, gt=0)
    # Pause a running campaign when more than this share of the last campaign_failure_window
    # answers (send answers and status webhooks) are failures (failure_rate).
    campaign_failure_pause_share: float = Field(default=0.5, gt=0, le=1)
    campaign_failure_window: int = Field(default=100, ge=50)
    # Recipients still unknown after this long are offered for resend-unknown.
    campaign_unknown_quiet_minutes: float = Field(default=30.0, ge=0)
    # One dispatcher per campaign holds a lease, renewed before every chunk; a crashed one's
    # lease runs out after this and the reconciler starts another.
    campaign_lease_seconds: float = Field(default=30.0, gt=0)
    # A campaign message "sending" for longer than this (its worker died mid-send) becomes
    # unknown: longer than the longest send (connect + read timeouts + pacing).
    campaign_sending_stale_seconds: float = Field(default=90.0, gt=0)
    # Recipients written per statement while the audience is materialised, and claimed per batch.
    campaign_materialize_chunk: int = Field(default=5000, ge=1, le=50000)
    campaign_batch_size: int = Field(default=500, ge=1, le=1000)
    # Seconds of the number's pace claimed ahead of its sends (how soon a pause takes effect).
    campaign_in_flight_seconds: float = Field(default=0.6, gt=0, le=10)

    # Mail (invitations). Unset host: no mail is sent; the invitation link is shown to the inviter.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "aisoule <no-reply@localhost>"
    # "starttls" (port 587), "tls" (implicit, port 465) or "none" (a local relay).
    smtp_security: str = Field(default="starttls", pattern="^(starttls|tls|none)$")

    @field_validator("http_allow_private_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        from aisoule.kit.http import parse_networks

        parse_networks(value)  # a typo fails at start, not at the first media check
        return value

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

    @property
    def self_url(self) -> str:
        """How this server reaches itself (the embedded emulator posts its webhooks here)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        scheme = "https" if self.ssl_certfile else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return (self.public_url or self.self_url).rstrip("/")

    @property
    def emulator_mode(self) -> str:
        """ "embedded", "external" (a URL) or "off"."""
        value = self.emulator.strip()
        if not value:
            return "off" if self.env == Environment.production else "embedded"
        if value in ("embedded", "off"):
            return value
        return "external"

    @property
    def emulator_url(self) -> str | None:
        """The emulator's Graph API base URL, or None when it is off."""
        mode = self.emulator_mode
        if mode == "off":
            return None
        if mode == "embedded":
            return f"{self.self_url}/emulator"
        return self.emulator.strip().rstrip("/")

    @property
    def sandbox_enabled(self) -> bool:
        if self.sandbox_accounts is not None:
            return self.sandbox_accounts and self.emulator_url is not None
        return self.emulator_url is not None and self.env != Environment.production

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
