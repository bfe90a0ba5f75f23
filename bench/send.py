"""``python -m bench.send``: the latency ``POST /api/messages/send`` adds, on PostgreSQL.

One ``aisoule serve`` (in-process worker, so the sends really go out while we measure) talking to
a separate ``aisoule emulator``; 200 contacts whose 24-hour window is open; an open-loop client
sends text messages at a fixed rate (not flat out: latency, not throughput, is the question) and
records each request's time to the 202. For scale, the same client measures ``GET /healthz`` (the
server's floor: routing and middleware, no auth, no database work worth the name) at the same
rate. Prints a table; ``--write`` puts it in its own section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg

from bench.env import BenchConfig, aisoule_bin, code_state
from bench.prepare import create_api_key, create_user, migrate, recreate_database
from bench.server import Server, http_json

EMULATOR_PORT = 8191
CONTACTS = 200


def _config(args: argparse.Namespace) -> BenchConfig:
    base = os.environ.get("AISOULE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/")
    url = base.rsplit("/", 1)[0] + "/aisoule_bench_send"
    return BenchConfig(
        database_url=url,
        contacts=CONTACTS,
        duration=args.duration,
        warmup=3,
        connections=16,
        threads=1,
        workers=1,
    )


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _open_loop(
    url: str, key: str, rate: float, seconds: float, body_for: object | None
) -> tuple[list[float], dict[int, int]]:
    """Start one request every 1/rate s whatever the previous did; latencies in ms."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64), headers=headers
    ) as http:

        async def one(i: int) -> None:
            start = time.perf_counter()
            if body_for is None:
                resp = await http.get(url)
            else:
                resp = await http.post(url, json=body_for(i))  # type: ignore[operator]
            await resp.read()
            latencies.append((time.perf_counter() - start) * 1000)
            statuses[resp.status] = statuses.get(resp.status, 0) + 1

        tasks = []
        t0 = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return latencies, statuses


async def _open_windows(cfg: BenchConfig, phones: list[str]) -> None:
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        account = await conn.fetchrow("SELECT id, workspace_id FROM whatsapp_accounts LIMIT 1")
        rows = await conn.fetch("SELECT id FROM contacts WHERE phone = ANY($1::text[])", phones)
        now = datetime.now(UTC)
        await conn.executemany(
            "INSERT INTO conversations (workspace_id, account_id, contact_id, last_inbound_at,"
            " last_message_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING",
            [(account["workspace_id"], account["id"], r["id"], now) for r in rows],
        )
    finally:
        await conn.close()


def _free(port: int) -> None:
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is taken")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--rates",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[20.0, 50.0, 100.0],
        help="requests per second, one run each (20,50,100)",
    )
    p.add_argument("--duration", type=int, default=20, help="seconds per run (20)")
    p.add_argument("--write", action="store_true", help="write its docs/benchmarks.md section")
    args = p.parse_args()
    cfg = _config(args)
    os.environ.update(
        AISOULE_EMULATOR=f"http://127.0.0.1:{EMULATOR_PORT}",
        AISOULE_SANDBOX_ACCOUNTS="true",
        AISOULE_EMULATOR_THROUGHPUT_PER_SECOND="1000",
        AISOULE_EMULATOR_WEBHOOK_URL=f"{cfg.base_url}/webhooks/whatsapp",
    )
    print("setting up database aisoule_bench_send", flush=True)
    asyncio.run(recreate_database(cfg))
    migrate(cfg)
    _free(EMULATOR_PORT)
    log_dir = Path("bench/results")
    log_dir.mkdir(parents=True, exist_ok=True)
    emu_log = (log_dir / "send-emulator.log").open("wb")
    emulator = subprocess.Popen(
        [aisoule_bin(), "emulator", "--port", str(EMULATOR_PORT)],
        env=cfg.app_env(),
        stdout=emu_log,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(1.5)
        create_user(cfg)  # the sandbox account is created with the workspace
        key = create_api_key(cfg)
        with Server(cfg, log_dir / "send-server.log"):
            phones = [f"+9198{random.randrange(10**7, 10**8)}" for _ in range(CONTACTS)]
            for phone in phones:
                status, body = http_json(
                    f"{cfg.base_url}/v1/contacts", key=key, method="POST", body={"phone": phone}
                )
                assert status in (200, 201), body
            asyncio.run(_open_windows(cfg, phones))
            url = f"{cfg.base_url}/api/messages/send"

            def body(i: int) -> dict[str, object]:
                return {"to": phones[i % len(phones)], "text": {"body": f"bench {i}"}}

            asyncio.run(_open_loop(url, key, args.rates[0], cfg.warmup, body))
            time.sleep(3)
            health, _ = asyncio.run(
                _open_loop(f"{cfg.base_url}/healthz", key, args.rates[0], args.duration, None)
            )
            runs: list[tuple[float, list[float], dict[int, int]]] = []
            for rate in args.rates:
                time.sleep(5)  # let the worker drain the previous run's sends and webhooks
                sends, statuses = asyncio.run(_open_loop(url, key, rate, args.duration, body))
                runs.append((rate, sends, statuses))
    finally:
        emulator.terminate()
        emulator.wait(10)
    rates = ", ".join(f"{r:g}" for r in args.rates)
    lines = [
        f"Produced by `python -m bench.send --rates {','.join(f'{r:g}' for r in args.rates)} "
        f"--duration {args.duration}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit "
        f"`{code_state()['commit']}`. One `aisoule serve` (one process, in-process worker) on "
        "PostgreSQL, with a separate `aisoule emulator` on the same 2 cores; every accepted "
        "message is really sent, and its three status webhooks come back and are applied while "
        f"we measure. Open loop at {rates} requests/s for {args.duration} s each; the time is "
        "from request to the 202 (the message is queued; sending is the worker's).",
        "",
        "| Request | rate | p50 | p90 | p99 | max | answers |",
        "|---|---:|---:|---:|---:|---:|---|",
        _row("GET /healthz (the server's floor)", args.rates[0], health, {200: len(health)}),
    ]
    failed = False
    for rate, sends, statuses in runs:
        lines.append(_row("POST /api/messages/send", rate, sends, statuses))
        failed = failed or statuses.get(202, 0) < len(sends) * 0.99
    print("\n".join(lines))
    if args.write:
        from bench.mdsection import write_section

        write_section(
            "send",
            "## Latency of POST /api/messages/send\n\nTarget: p99 under 30 ms.\n\n"
            + "\n".join(lines),
        )
    if failed:
        sys.exit("fewer than 99% of the sends were accepted: see bench/results/send-server.log")


def _row(name: str, rate: float, values: list[float], statuses: dict[int, int]) -> str:
    answers = ", ".join(f"{n} x {code}" for code, n in sorted(statuses.items()))
    return (
        f"| {name} | {rate:g}/s | {statistics.median(values):.1f} ms | "
        f"{_percentile(values, 90):.1f} ms | {_percentile(values, 99):.1f} ms | "
        f"{max(values):.1f} ms | {answers} |"
    )


if __name__ == "__main__":
    main()
