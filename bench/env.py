"""Shared settings of a benchmark run: where the database is, who the bench user is, paths."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
DOC_PATH = ROOT / "docs" / "benchmarks.md"

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/aisoule_bench"
# A fixed secret, so that a re-run with --skip-seed derives the same API-key pepper. Bench only.
BENCH_SECRET = "aisoule-bench-secret-not-for-production-00000000"
BENCH_EMAIL = "bench@example.com"
BENCH_PASSWORD = "bench-password-123"
BENCH_WORKSPACE = "Bench workspace"
BENCH_PORT = 8100

assert len(BENCH_SECRET) == 48


def aisoule_bin() -> str:
    """The ``aisoule`` console script of the interpreter running the bench (the project's venv)."""
    candidate = Path(sys.executable).parent / "aisoule"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("aisoule")
    if found is None:
        raise SystemExit("the aisoule command is not installed; run `make bench` (it installs it)")
    return found


@dataclass(slots=True)
class BenchConfig:
    database_url: str
    contacts: int
    duration: int
    warmup: int
    connections: int
    threads: int
    workers: int
    port: int = BENCH_PORT
    skip_seed: bool = False
    # Filled in by the setup step.
    workspace_id: str = ""
    api_key: str = ""
    api_key_hash: str = ""

    @property
    def asyncpg_dsn(self) -> str:
        """The URL asyncpg understands (no SQLAlchemy driver suffix)."""
        return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", self.database_url)

    @property
    def admin_dsn(self) -> str:
        """The same server, database ``postgres``: for DROP/CREATE DATABASE."""
        return self.asyncpg_dsn.rsplit("/", 1)[0] + "/postgres"

    @property
    def database_name(self) -> str:
        return self.asyncpg_dsn.rsplit("/", 1)[1].split("?", 1)[0]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app_env(self) -> dict[str, str]:
        """Environment for the aisoule CLI and server."""
        env = dict(os.environ)
        env.update(
            AISOULE_DATABASE_URL=self.asyncpg_dsn,
            AISOULE_SECRET_KEY=BENCH_SECRET,
            AISOULE_LOG_LEVEL="WARNING",
            AISOULE_ENV="production",
            # Per-key rate limits, where the server has them, must not turn load into 429s: raise
            # them far above what one machine can serve (the limiter's bookkeeping still runs).
            AISOULE_RATELIMIT_PER_MINUTE="1000000000",
            AISOULE_RATELIMIT_PER_SECOND="1000000000",
        )
        return env


def run(cmd: list[str], *, env: dict[str, str] | None = None, check: bool = True) -> str:
    """Run a command, return its stdout; on failure show its stderr."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


def code_state() -> dict[str, str]:
    """The commit measured, and whether aisoule/ had uncommitted changes."""
    commit = run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], check=False).strip()
    dirty = run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "aisoule"], check=False)
    return {"commit": commit or "unknown", "aisoule_changes": str(len(dirty.splitlines()))}


def machine_info(asyncpg_server_version: str) -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    wrk_version = run(["wrk", "--version"], check=False).splitlines() if shutil.which("wrk") else []
    return {
        "cpus": str(os.cpu_count() or "?"),
        "cpu_model": cpu,
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": asyncpg_server_version,
        "wrk": wrk_version[0].split(" Copyright")[0] if wrk_version else "?",
    }
