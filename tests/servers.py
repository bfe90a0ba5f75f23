"""Real servers for the tests: `aisoule serve` in a subprocess, on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
AISOULE = [sys.executable, "-m", "aisoule"]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
TEST_SECRET = "test-secret-0123456789abcdef0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_url() -> str:
    """The test database; under pytest-xdist each worker gets its own next to it
    (``test`` -> ``test_gw0``), since the fixtures empty it."""
    base = os.environ.get("AISOULE_TEST_DATABASE_URL", DEFAULT_PG)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return base
    if worker not in _WORKER_DATABASES:
        _WORKER_DATABASES[worker] = _database_next_to(base, worker)
    return _WORKER_DATABASES[worker]


_WORKER_DATABASES: dict[str, str] = {}


def _database_next_to(url: str, suffix: str) -> str:
    """``<name>_<suffix>`` on the same server, created if missing (not emptied)."""
    import asyncpg

    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://"))
    name = f"{parts.path.lstrip('/') or 'postgres'}_{suffix}"

    async def run() -> None:
        conn = await asyncpg.connect(urlunsplit(parts), timeout=10)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(run())
    return urlunsplit(parts._replace(path=f"/{name}"))


def reset_postgres(url: str) -> None:
    """Empty the test database: drop and recreate its public schema. Unreachable is a failure."""
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    async def run() -> None:
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
        finally:
            await conn.close()

    asyncio.run(run())


def sibling_postgres(url: str, suffix: str) -> str:
    """A database next to the test database (``test`` -> ``test_<suffix>``), created if missing,
    emptied: for a test that must not share rows with the session's server."""
    sibling = _database_next_to(url, suffix)
    reset_postgres(sibling)
    return sibling


@dataclass
class Server:
    backend: str
    database_url: str
    data_dir: Path
    env: dict[str, str]
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)
    args: list[str] = field(default_factory=list)  # extra `aisoule serve` options
    scheme: str = "http"  # "https" with --ssl-certfile/--ssl-keyfile in args

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def cli(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*AISOULE, *args],
            env=self.env,
            cwd=self.data_dir,
            capture_output=True,
            text=True,
            check=check,
            input=input,
            timeout=120,
        )

    def start(self) -> None:
        self.port = free_port()
        self.log_path = self.data_dir / f"server-{self.port}.log"
        log = self.log_path.open("wb")
        env = dict(self.env)
        # Meta is the one outside system: "cloud_api" accounts talk to this server's embedded
        # emulator too, so no test ever reaches graph.facebook.com.
        env.setdefault("AISOULE_WHATSAPP_GRAPH_URL", f"http://127.0.0.1:{self.port}/emulator")
        self.proc = subprocess.Popen(
            [*AISOULE, "serve", "--port", str(self.port), *self.args],
            env=env,
            cwd=self.data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = (
            time.monotonic() + 90
        )  # a deadline, not a wait: a loaded 2-core machine is slow to import
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.logs()}")
            try:
                # verify=False: the HTTPS tests serve a self-signed certificate.
                if httpx.get(self.url + "/healthz", timeout=1, verify=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""


def make_server(
    backend: str, tmp: Path, *, database_url: str | None = None, **extra_env: str
) -> Server:
    data_dir = tmp / backend
    data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or (
        f"sqlite+aiosqlite:///{data_dir / 'aisoule.db'}" if backend == "sqlite" else pg_url()
    )
    env = {
        **os.environ,
        "AISOULE_ENV": "test",
        "AISOULE_DATABASE_URL": url,
        "AISOULE_DATA_DIR": str(data_dir / "var"),
        "AISOULE_SECRET_KEY": TEST_SECRET,
        "AISOULE_LOG_LEVEL": "WARNING",
        # Functional tests call fast; the rate-limit tests start servers with the real defaults.
        "AISOULE_RATELIMIT_PER_MINUTE": "1000000",
        "AISOULE_RATELIMIT_PER_SECOND": "100000",
        "AISOULE_RATELIMIT_SESSION_PER_MINUTE": "1000000",
        "AISOULE_RATELIMIT_SESSION_PER_SECOND": "100000",
        "AISOULE_LOGIN_MAX_FAILURES_PER_IP": "100000",
        "AISOULE_SIGNUP_MAX_PER_IP": "100000",
        "AISOULE_USAGE_FLUSH_SECONDS": "0.2",
        "PYTHONPATH": str(ROOT),
        **extra_env,
    }
    return Server(backend=backend, database_url=url, data_dir=data_dir, env=env)
