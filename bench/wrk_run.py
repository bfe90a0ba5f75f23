"""wrk: make sure it is installed, run it with the bench's Lua hooks, parse its results."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench import cpu
from bench.env import BENCH_DIR

LUA_DIR = BENCH_DIR / "wrk"


def ensure_wrk() -> str:
    """The wrk binary; installed with apt-get when missing and we are root, else a clear error."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
            subprocess.run(install, env=env, check=False)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit(
        "The benchmark needs wrk (https://github.com/wg/wrk). Install it, e.g.\n"
        "  sudo apt-get install -y wrk      # Debian/Ubuntu\n"
        "  brew install wrk                 # macOS\n"
        "then run `make bench` again."
    )


@dataclass(slots=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int]
    counters: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    # CPU seconds of each server process (the workers), largest first: shows an uneven split
    worker_cpu: list[float] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def run_wrk(
    url: str,
    *,
    key: str,
    duration: int,
    connections: int,
    threads: int,
    script: str | None = None,
    script_args: list[str] | None = None,
    server_pid: int | None = None,
    database: str = "aisoule_bench",
) -> WrkResult:
    """One wrk run; with server_pid, also the CPU seconds of server, postgres and wrk."""
    lua = (LUA_DIR / "report.lua").read_text()
    if script is not None:
        lua += "\n" + (LUA_DIR / script).read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(lua)
        lua_path = Path(handle.name)
    cmd = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-H",
        f"Authorization: Bearer {key}",
        "-s",
        str(lua_path),
        url,
    ]
    if script_args:
        cmd += ["--", *script_args]
    try:
        roots = {"bench": os.getpid()}
        if server_pid is not None:
            roots = {"server": server_pid, **roots}  # the server is our child: match it first
        sampler = cpu.Sampler(roots, database)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with sampler:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            out, err = proc.communicate(timeout=duration + 120)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        lua_path.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise SystemExit(f"wrk failed ({proc.returncode}): {err}\n{out}")
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise SystemExit(f"no results in wrk output:\n{out}\n{err}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    duration_s = data["duration_us"] / 1e6
    usage = sampler.usage()
    # wrk is our child: its exact CPU is in the rusage of our reaped children.
    usage["wrk"] = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    usage["total"] += usage["wrk"]
    return WrkResult(
        requests=data["requests"],
        duration_s=duration_s,
        rps=data["requests"] / duration_s,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        p999_ms=data["p99.9_us"] / 1000,
        max_ms=data["latency_max_us"] / 1000,
        mean_ms=data["latency_mean_us"] / 1000,
        errors={k.removeprefix("errors_"): v for k, v in data.items() if k.startswith("errors_")},
        counters={k: data[k] for k in ("created", "updated", "failed") if k in data},
        cpu=usage,
        worker_cpu=[round(c, 2) for c in sampler.tree(server_pid)] if server_pid else [],
    )
