"""pgbench with the bench's SQL scripts: the database alone, from a C client (little CPU of its own)."""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench import cpu
from bench.env import BENCH_DIR

SCRIPT_DIR = BENCH_DIR / "pgbench"


def find_pgbench() -> str:
    for candidate in (shutil.which("pgbench"), "/usr/bin/pgbench"):
        if candidate and Path(candidate).exists():
            return candidate
    for path in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(path)
    raise SystemExit(
        "The benchmark needs pgbench (Debian/Ubuntu: apt-get install -y postgresql-contrib or "
        "postgresql-client) for the database-alone figures."
    )


@dataclass(slots=True)
class PgbenchResult:
    transactions: int
    failed: int
    aborted: bool
    duration_s: float
    tps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return self.failed + (1 if self.aborted else 0)


def _conn_args(dsn: str) -> list[str]:
    parts = urlsplit(dsn)
    args = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432)]
    if parts.username:
        args += ["-U", parts.username]
    return [*args, parts.path.lstrip("/")]


def _percentile(sorted_values: list[int], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[index])


def run_pgbench(
    dsn: str,
    script: str,
    variables: dict[str, str],
    *,
    duration: int,
    warmup: int,
    clients: int,
    threads: int,
) -> PgbenchResult:
    exe = find_pgbench()
    database = urlsplit(dsn).path.lstrip("/")
    password = urlsplit(dsn).password
    env = dict(os.environ, PGPASSWORD=password) if password else None
    base = [exe, "-n", "-M", "prepared", "-c", str(clients), "-j", str(threads)]
    base += ["-f", str(SCRIPT_DIR / script)]
    for name, value in variables.items():
        base += ["-D", f"{name}={value}"]
    conn = _conn_args(dsn)
    if warmup > 0:
        subprocess.run([*base, "-T", str(warmup), *conn], env=env, capture_output=True, check=False)
    with tempfile.TemporaryDirectory(prefix="aisoule-pgbench-") as tmp:
        prefix = str(Path(tmp) / "log")
        cmd = [*base, "-T", str(duration), "-l", "--log-prefix", prefix, *conn]
        sampler = cpu.Sampler({"bench": os.getpid()}, database)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with sampler:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        usage = sampler.usage()
        usage["client"] = (children_after.ru_utime + children_after.ru_stime) - (
            children_before.ru_utime + children_before.ru_stime
        )
        usage["total"] += usage["client"]
        latencies: list[int] = []
        failed_in_log = 0
        for path in Path(tmp).glob("log*"):
            for line in path.read_text().splitlines():
                fields = line.split()
                if len(fields) < 3:
                    continue
                if fields[2].isdigit():
                    latencies.append(int(fields[2]))
                else:
                    failed_in_log += 1
    out = proc.stdout
    if "tps =" not in out:
        raise SystemExit(f"pgbench failed ({proc.returncode}):\n{proc.stderr}\n{out}")

    def number(pattern: str) -> float:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else 0.0

    processed = int(number(r"number of transactions actually processed: (\d+)"))
    failed = int(number(r"number of failed transactions: (\d+)")) or failed_in_log
    tps = number(r"tps = ([0-9.]+)")
    aborted = proc.returncode != 0 or "aborted" in proc.stderr
    latencies.sort()
    return PgbenchResult(
        transactions=processed,
        failed=failed,
        aborted=aborted,
        duration_s=processed / tps if tps else float(duration),
        tps=tps,
        p50_ms=_percentile(latencies, 50) / 1000,
        p90_ms=_percentile(latencies, 90) / 1000,
        p99_ms=_percentile(latencies, 99) / 1000,
        max_ms=(latencies[-1] / 1000) if latencies else float("nan"),
        cpu=usage,
    )
