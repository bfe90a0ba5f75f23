"""``python -m bench.campaign``: a campaign at Meta's full throughput, on PostgreSQL and Redis.

Production shape on one machine: ``aisoule serve`` (API only, ``AISOULE_WORKER_MODE=external``),
``--workers`` ``aisoule worker`` processes on Redis Streams, and a separate ``aisoule emulator``
whose throughput is the pace. Each run is a fresh database with exactly the audience's contacts
(bench/seed.py, COPY), a positional template, and one ``POST /api/campaigns`` with
``"start": true``; the campaign's messages are counted in the database while it runs.

Figures per run:
- the sustained rate (from 10% to 90% of the recipients accepted by the emulator) as a fraction of
  the pace; with the emulator's status webhooks off, then on;
- CPU milliseconds per sent message of the workers, the API server, PostgreSQL, Redis and the
  emulator (from /proc), at each audience size (flat is the goal);
- time from ``start`` to the first accepted message, and until the audience is written
  (``campaigns.materialized``);
- the peak RSS of each worker (VmHWM).
Beside them, in the same session, the emulator's own ceiling: a bare aiohttp client posting the
same template sends flat out, so the table shows what the engine adds.

``--write`` puts the table in its own section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import cpu, seed
from bench.env import BenchConfig, aisoule_bin, code_state, machine_info
from bench.prepare import create_api_key, create_user, load_identity, migrate, recreate_database
from bench.server import Server, http_json

EMULATOR_PORT = 8192
REDIS_DB = 11
# A recipient Meta took is in one of these (its furthest state; sent when webhooks are off).
ACCEPTED_KEYS = ["status:sent", "status:delivered", "status:read"]
READY = "aisoule worker: running tasks"  # what `aisoule worker` prints once it runs
LOG_DIR = Path("bench/results")
TEMPLATE = {
    "name": "bench_offer",
    "language": "en_US",
    "category": "MARKETING",
    "components": [
        {
            "type": "BODY",
            "text": "Hi {{1}}, your code is {{2}}.",
            "example": {"body_text": [["Priya", "DIWALI20"]]},
        }
    ],
}


@dataclass
class Run:
    size: int
    webhooks: bool
    pace: int
    workers: int
    start_to_first_s: float | None = None
    materialized_s: float | None = None
    sustained_per_s: float | None = None
    total_s: float | None = None
    accepted: int = 0
    duplicates: int = 0
    cpu_ms_per_msg: dict[str, float] = field(default_factory=dict)
    worker_peak_rss_mb: list[float] = field(default_factory=list)
    final_status: str = ""
    stats: dict[str, Any] = field(default_factory=dict)


def _config(size: int, args: argparse.Namespace) -> BenchConfig:
    base = os.environ.get("AISOULE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/")
    return BenchConfig(
        database_url=base.rsplit("/", 1)[0] + "/aisoule_bench_campaign",
        contacts=size,
        duration=0,
        warmup=0,
        connections=1,
        threads=1,
        workers=1,
        port=args.port,
    )


def _free(port: int) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is taken")


def _redis_url() -> str:
    return os.environ.get("AISOULE_BENCH_REDIS_URL", f"redis://127.0.0.1:6379/{REDIS_DB}")


def _redis_pid() -> int | None:
    for p in cpu.snapshot().values():
        if p.comm.startswith("redis-server"):
            return p.pid
    return None


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def _flush_redis(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


def _emulator(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    _free(EMULATOR_PORT)
    proc = subprocess.Popen(
        [aisoule_bin(), "emulator", "--port", str(EMULATOR_PORT)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status, _ = http_json(f"http://127.0.0.1:{EMULATOR_PORT}/_emulator/health")
            if status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the emulator did not start; see {log}")


async def _template_approved(cfg: BenchConfig, key: str) -> None:
    status, body = http_json(f"{cfg.base_url}/api/templates", key=key, method="POST", body=TEMPLATE)
    if status not in (200, 201, 202):
        raise SystemExit(f"creating the template failed: {status} {body}")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        conn = await asyncpg.connect(cfg.asyncpg_dsn)
        try:
            row = await conn.fetchval(
                "SELECT status FROM message_templates WHERE name = $1", TEMPLATE["name"]
            )
        finally:
            await conn.close()
        if row == "APPROVED":
            return
        http_json(f"{cfg.base_url}/api/templates/sync", key=key, method="POST", body={})
        await asyncio.sleep(1)
    raise SystemExit("the bench template was not approved within 60 s")


async def _watch(
    cfg: BenchConfig,
    campaign_id: str,
    size: int,
    run: Run,
    t0_db: datetime,
    stop_after: float | None = None,
) -> None:
    """Poll the database until the campaign ends (or ``stop_after`` seconds after its audience is
    written): first message, materialised, 10%/90% marks."""
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    cid = uuid.UUID(campaign_id)
    marks: dict[int, float] = {}
    t0 = time.perf_counter()
    try:
        deadline = t0 + max(120.0, size / max(1, run.pace) * 4 + 60)
        while time.perf_counter() < deadline:
            row = await conn.fetchrow(
                "SELECT status, materialized FROM campaigns WHERE id = $1", cid
            )
            # The campaign's own counters (a few rows), not a count over its messages: that
            # count grows with the campaign and is PostgreSQL CPU the engine would be billed for.
            accepted = await conn.fetchval(
                "SELECT coalesce(sum(n), 0) FROM campaign_counters WHERE campaign_id = $1"
                " AND key = ANY($2::text[])",
                cid,
                ACCEPTED_KEYS,
            )
            now = time.perf_counter() - t0
            if run.start_to_first_s is None and accepted:
                # When Meta's first answer was recorded (a message's updated_at moves on with
                # its status webhooks).
                first = await conn.fetchval(
                    "SELECT min(e.at) FROM message_status_events e JOIN messages m"
                    " ON m.id = e.message_id WHERE m.campaign_id = $1 AND e.status = 'accepted'",
                    cid,
                )
                run.start_to_first_s = max(0.0, (first - t0_db).total_seconds())
            if run.materialized_s is None and row["materialized"]:
                run.materialized_s = now
            for pct in (10, 90):
                if pct not in marks and accepted >= size * pct / 100:
                    marks[pct] = now
            run.accepted = accepted
            if (
                stop_after is not None
                and run.materialized_s is not None
                and now >= run.materialized_s + stop_after
            ):
                run.final_status = f"stopped {stop_after:.0f} s after its audience was written"
                run.total_s = now
                break
            if row["status"] in ("completed", "cancelled", "failed", "paused"):
                run.final_status = row["status"]
                run.total_s = now
                break
            await asyncio.sleep(0.25)
        if 10 in marks and 90 in marks and marks[90] > marks[10]:
            run.sustained_per_s = size * 0.8 / (marks[90] - marks[10])
        run.duplicates = await conn.fetchval(
            "SELECT count(*) - count(DISTINCT phone) FROM messages WHERE campaign_id = $1", cid
        )
    finally:
        await conn.close()


def _one(
    args: argparse.Namespace, size: int, webhooks: bool, stop_after: float | None = None
) -> Run:
    cfg = _config(size, args)
    run = Run(size=size, webhooks=webhooks, pace=args.pace, workers=args.workers)
    redis_url = _redis_url()
    print(f"-- {size:,} recipients, webhooks {'on' if webhooks else 'off'}", flush=True)
    asyncio.run(recreate_database(cfg))
    migrate(cfg)
    asyncio.run(_flush_redis(redis_url))
    env = cfg.app_env()
    env.update(
        AISOULE_EMULATOR=f"http://127.0.0.1:{EMULATOR_PORT}",
        AISOULE_SANDBOX_ACCOUNTS="true",
        AISOULE_EMULATOR_THROUGHPUT_PER_SECOND=str(args.pace),
        AISOULE_EMULATOR_TEMPLATE_APPROVAL_SECONDS="0",
        AISOULE_WORKER_MODE="external",
        AISOULE_REDIS_URL=redis_url,
    )
    if webhooks:
        env["AISOULE_EMULATOR_WEBHOOK_URL"] = f"{cfg.base_url}/webhooks/whatsapp"
    else:
        env.pop("AISOULE_EMULATOR_WEBHOOK_URL", None)
    os.environ.update({k: v for k, v in env.items() if k.startswith("AISOULE_")})
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    emulator = _emulator(env, LOG_DIR / "campaign-emulator.log")
    workers: list[subprocess.Popen[bytes]] = []
    try:
        create_user(cfg)
        key = create_api_key(cfg)
        cfg.api_key = key
        asyncio.run(load_identity(cfg))
        print(f"  seeding {size:,} contacts", flush=True)
        asyncio.run(seed.seed(cfg.asyncpg_dsn, cfg.workspace_id, size))
        asyncio.run(_set_pace(cfg, args.pace))
        with Server(cfg, LOG_DIR / "campaign-server.log") as server:
            asyncio.run(_template_approved(cfg, key))
            logs = [LOG_DIR / f"campaign-worker-{i}.log" for i in range(args.workers)]
            for path in logs:
                workers.append(
                    subprocess.Popen(
                        [aisoule_bin(), "worker"],
                        env=env,
                        stdout=path.open("wb"),
                        stderr=subprocess.STDOUT,
                    )
                )
            _wait_ready(workers, logs)
            roots = {"server": server.pid, "emulator": emulator.pid}
            roots.update({f"worker{i}": w.pid for i, w in enumerate(workers)})
            redis_pid = _redis_pid()
            if redis_pid is not None:
                roots["redis"] = redis_pid
            body = {
                "name": f"bench {size}",
                "template": {"name": TEMPLATE["name"], "language": TEMPLATE["language"]},
                "audience": {"tags": list(seed.REGIONS)},  # every seeded contact has one
                "parameters": {
                    "body": [{"field": "first_name", "fallback": "there"}, {"value": "DIWALI20"}]
                },
                "start": True,
                "force": True,
            }
            t0_db = asyncio.run(_db_now(cfg))
            with cpu.Sampler(roots, cfg.database_name) as sampler:
                status, answer = http_json(
                    f"{cfg.base_url}/api/campaigns", key=key, method="POST", body=body
                )
                if status != 201:
                    raise SystemExit(f"POST /api/campaigns answered {status}: {answer}")
                campaign_id = answer["data"]["campaign"]["id"]
                asyncio.run(_watch(cfg, campaign_id, size, run, t0_db, stop_after))
                if stop_after is not None:
                    http_json(
                        f"{cfg.base_url}/api/campaigns/{campaign_id}/cancel",
                        key=key,
                        method="POST",
                        body={},
                    )
            used = sampler.usage()
            sent = max(1, run.accepted)
            run.cpu_ms_per_msg = {
                "workers": sum(v for k, v in used.items() if k.startswith("worker")) * 1000 / sent,
                "server": used.get("server", 0.0) * 1000 / sent,
                "postgres": used.get("postgres", 0.0) * 1000 / sent,
                "redis": used.get("redis", 0.0) * 1000 / sent,
                "emulator": used.get("emulator", 0.0) * 1000 / sent,
            }
            run.worker_peak_rss_mb = [_peak_rss_mb(w.pid) for w in workers]
            _, stats = http_json(f"{cfg.base_url}/api/campaigns/{campaign_id}/stats", key=key)
            run.stats = (stats or {}).get("data", {}).get("stats", {})
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
        emulator.terminate()
        emulator.wait(10)
    print(f"  {run}", flush=True)
    return run


def _wait_ready(workers: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """Until every worker says it runs tasks (connected to Redis and PostgreSQL, its consumer
    group joined), so that the start-to-first figure does not include their start."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for w, path in zip(workers, logs, strict=True):
            if w.poll() is not None:
                raise SystemExit(f"a worker exited ({w.returncode}): see {path}")
        if all(READY in path.read_text(errors="replace") for path in logs):
            return
        time.sleep(0.05)
    raise SystemExit(f"the workers did not start within 60 s: see {logs}")


async def _db_now(cfg: BenchConfig) -> datetime:
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        value: datetime = await conn.fetchval("SELECT clock_timestamp()")
        return value
    finally:
        await conn.close()


async def _pg_version(cfg: BenchConfig) -> str:
    conn = await asyncpg.connect(cfg.admin_dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def _set_pace(cfg: BenchConfig, pace: int) -> None:
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        await conn.execute("UPDATE whatsapp_accounts SET throughput = $1", pace)
    finally:
        await conn.close()


async def _ceiling(args: argparse.Namespace, n: int) -> tuple[float, float]:
    """The emulator alone: a bare aiohttp client sending ``n`` template messages flat out (64 in
    flight); messages per second, and the emulator's CPU ms per message."""
    env = dict(os.environ)
    env.update(
        AISOULE_EMULATOR_THROUGHPUT_PER_SECOND="100000",
        AISOULE_EMULATOR_PAIR_BURST="1000000",
    )
    env.pop("AISOULE_EMULATOR_WEBHOOK_URL", None)
    emulator = _emulator(env, LOG_DIR / "campaign-ceiling.log")
    try:
        base = f"http://127.0.0.1:{EMULATOR_PORT}"
        async with aiohttp.ClientSession() as http:
            phone_id = "990000000001"
            async with http.post(
                f"{base}/_emulator/numbers",
                json={"phone_number_id": phone_id, "waba_id": "990000000002"},
            ) as resp:
                if resp.status not in (200, 201):
                    raise SystemExit(f"registering the ceiling's number: {await resp.text()}")
            tokens = env.get("AISOULE_EMULATOR_ACCESS_TOKENS", "emulator-token")
            token = tokens.split(",")[0].strip()
            url = f"{base}/v21.0/{phone_id}/messages"
            headers = {"Authorization": f"Bearer {token}"}
            sem = asyncio.Semaphore(64)
            ok = 0

            async def one(i: int) -> None:
                nonlocal ok
                body = {
                    "messaging_product": "whatsapp",
                    "to": seed.phone_of(i).lstrip("+"),
                    "type": "template",
                    "template": {"name": "hello_world", "language": {"code": "en_US"}},
                }
                async with sem, http.post(url, json=body, headers=headers) as resp:
                    await resp.read()
                    ok += resp.status == 200

            before = cpu.snapshot()
            t0 = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(n)))
            elapsed = time.perf_counter() - t0
            used = cpu.usage(before, cpu.snapshot(), {"emulator": emulator.pid})
        if ok < n * 0.99:
            print(f"  ceiling: only {ok} of {n} sends were accepted", flush=True)
        return ok / elapsed, used["emulator"] * 1000 / max(1, ok)
    finally:
        emulator.terminate()
        emulator.wait(10)


def _markdown(args: argparse.Namespace, runs: list[Run], ceiling: tuple[float, float]) -> str:
    info = machine_info(args.pg_version)
    lines = [
        f"Produced by `python -m bench.campaign {' '.join(sys.argv[1:])}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit `{code_state()['commit']}`. Machine: "
        f"{info['cpus']} CPUs ({info['cpu_model']}, {info['memory']}), PostgreSQL "
        f"{info['postgresql']} and Redis local. "
        f"`aisoule serve` (API only) + {args.workers} `aisoule worker` on Redis Streams + a "
        f"separate `aisoule emulator` at a throughput of {args.pace} msg/s, all on this machine. "
        "Each run: a fresh database holding exactly the audience, one `POST /api/campaigns` "
        '`"start": true`.',
        "",
        f"Emulator ceiling (bare aiohttp client, 64 in flight, no engine): **{ceiling[0]:,.0f} "
        f"msg/s**, emulator CPU {ceiling[1]:.2f} ms/msg.",
        "",
        "| recipients | status webhooks | sustained msg/s | of the pace | start → first | "
        "audience written | total s | workers CPU ms/msg | server | PostgreSQL | Redis | "
        "emulator | worker peak RSS MB | duplicates | end |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        c = r.cpu_ms_per_msg
        rate = r.sustained_per_s
        # No 10% to 90% stretch (stopped on purpose, or not done in time): no rate, not 0.
        shown = ("-", "-") if rate is None else (f"{rate:,.0f}", f"{rate / r.pace:.2f}")
        end = r.final_status or f"not done in time: {r.accepted:,} accepted"
        lines.append(
            f"| {r.size:,} | {'on' if r.webhooks else 'off'} | {shown[0]} | {shown[1]} | "
            f"{_s(r.start_to_first_s)} | {_s(r.materialized_s)} | {_s(r.total_s)} | "
            f"{c.get('workers', 0):.2f} | {c.get('server', 0):.2f} | {c.get('postgres', 0):.2f} | "
            f"{c.get('redis', 0):.2f} | {c.get('emulator', 0):.2f} | "
            f"{', '.join(f'{m:.0f}' for m in r.worker_peak_rss_mb)} | {r.duplicates} | "
            f"{end} |"
        )
    return "\n".join(lines)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--sizes",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[10_000, 100_000],
        help="audience sizes, one run each, webhooks off (10000,100000)",
    )
    p.add_argument("--webhooks-size", type=int, default=100_000, help="one run with webhooks on")
    p.add_argument("--audience", type=int, default=1_000_000, help="the materialisation run")
    p.add_argument(
        "--audience-seconds",
        type=float,
        default=60.0,
        help="the materialisation run sends this long after its audience is written, then is "
        "cancelled (60; 0 sends it all)",
    )
    p.add_argument("--pace", type=int, default=1000, help="messages per second (1000)")
    p.add_argument("--workers", type=int, default=2, help="`aisoule worker` processes (2)")
    p.add_argument("--port", type=int, default=8013)
    p.add_argument("--write", action="store_true", help="write its docs/benchmarks.md section")
    args = p.parse_args()
    if shutil.which("redis-server") is None and _redis_pid() is None:
        raise SystemExit("Redis is needed (AISOULE_BENCH_REDIS_URL, default local DB 11)")
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    args.pg_version = asyncio.run(_pg_version(_config(0, args)))
    ceiling = asyncio.run(_ceiling(args, 20_000))
    print(f"emulator ceiling: {ceiling[0]:,.0f} msg/s", flush=True)
    runs = [_one(args, size, webhooks=False) for size in args.sizes]
    if args.webhooks_size:
        runs.append(_one(args, args.webhooks_size, webhooks=True))
    if args.audience:
        runs.append(
            _one(args, args.audience, webhooks=False, stop_after=args.audience_seconds or None)
        )
    text = _markdown(args, runs, ceiling)
    print(text)
    if args.write:
        from bench.mdsection import write_section

        write_section("campaign", "## Campaigns at full throughput (issue 10)\n\n" + text)


if __name__ == "__main__":
    main()
