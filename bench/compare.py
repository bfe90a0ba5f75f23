"""``python -m bench.compare``: the benchmarks at two commits, alternating in one session.

Issue 9 asks that a refactor make none of the list, tag, upsert, webhook-ingest and send-latency
scenarios more than 5% worse. One run of this tool measures both checkouts (``--before DIR``,
``--after DIR``: git worktrees of the two commits) in turn, before then after, for ``--rounds``
rounds of each scenario, so that the machine's drift falls on both sides alike:

- list, tag, upsert: ``bench/__main__.py``'s wrk scenarios against ``aisoule serve --workers 2``,
  one database seeded once (1,000,000 contacts by default);
- webhook ingest: ``bench/webhooks.py``'s signed status deliveries, each run on a fresh copy of one
  seeded database (``CREATE DATABASE ... TEMPLATE``), so both sides start from the same rows;
- send latency: ``bench/send.py``'s open-loop ``POST /api/messages/send`` with one shared
  ``aisoule emulator``; each run waits until its messages' status webhooks are all applied, so the
  next side does not receive them;
- the batch cost (``bench/batch.py``, the AFTER checkout only: the code before has no
  ``enqueue_batch``).

The databases are created and migrated by the AFTER checkout (its schema is a superset: two nullable
columns of ``messages``, which the code before never names). Each server runs its own checkout's
code with this venv's dependencies: ``aisoule`` is imported from the checkout, and the first line of
the server's log (the file imported) is checked against it. The load generators are this tree's,
the same for both sides. Results: a table on stdout and ``bench/results/compare.json``; ``--write``
also puts it in its own section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench import cpu, prepare, seed, send, webhooks
from bench.__main__ import SCENARIOS, Scenario, _checkpoint, _least_noisy, phone_ranges
from bench.env import RESULTS_DIR, ROOT, BenchConfig, aisoule_bin, machine_info
from bench.mdsection import write_section
from bench.server import Server, http_json
from bench.wrk_run import WrkResult, ensure_wrk, run_wrk

SECTION = "issue9-compare"
RESULTS = RESULTS_DIR / "compare.json"
LOG_DIR = RESULTS_DIR / "compare"
LIMIT = 5.0  # percent: how much worse a figure may get
PARTS = ("contacts", "webhooks", "send", "batch")
CONFIG_KEYS = (
    "rounds", "duration", "warmup", "contacts", "connections", "threads", "workers", "messages",
    "hook_batch", "hook_connections", "rates", "batch_size", "batch_rounds",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Side:
    """One checkout under test."""

    name: str
    root: Path
    commit: str
    changes: int  # uncommitted changes under aisoule/
    module: str  # the aisoule/__init__.py Python imports there

    def env(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with this checkout first on the import path."""
        out = dict(env)
        out["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.root), env.get("PYTHONPATH")) if p)
        return out


def load_side(name: str, path: str) -> Side:
    root = Path(path).resolve()
    if not (root / "aisoule" / "__init__.py").is_file():
        raise SystemExit(f"--{name} {path}: not a checkout of aisoule (no aisoule/__init__.py)")
    found = subprocess.run(
        [sys.executable, "-c", "import aisoule; print(aisoule.__file__)"],
        cwd=root,
        env=Side(name, root, "", 0, "").env(dict(os.environ)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    expected = str(root / "aisoule" / "__init__.py")
    if found != expected:
        raise SystemExit(f"--{name}: Python imports aisoule from {found}, not {expected}")
    git = ["git", "-C", str(root)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "aisoule"], capture_output=True, text=True
    ).stdout
    return Side(name, root, commit or "unknown", len(dirty.splitlines()), found)


@dataclass(slots=True)
class Config(BenchConfig):
    """A bench configuration whose app environment carries extra variables."""

    extra_env: dict[str, str] = field(default_factory=dict)

    def app_env(self) -> dict[str, str]:
        env = BenchConfig.app_env(self)
        env.update(self.extra_env)
        return env


def step(message: str) -> None:
    print(f"\n== {message}", flush=True)


def _url(base: str, database: str) -> str:
    return base.rsplit("/", 1)[0] + "/" + database


def _setup(cfg: Config, after: Side) -> Config:
    """The same configuration for the CLI commands that build a database: the AFTER code."""
    return replace(cfg, extra_env=after.env(cfg.extra_env))


def _fresh(cfg: Config, after: Side) -> Config:
    """Drop and recreate the database, migrate it with the AFTER code, add the bench owner."""
    setup = _setup(cfg, after)
    asyncio.run(prepare.recreate_database(cfg))
    subprocess.run([aisoule_bin(), "migrate"], env=setup.app_env(), check=True)
    prepare.create_user(setup)
    return setup


async def _clone(template: BenchConfig, target: BenchConfig) -> None:
    name = target.database_name
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing to drop a database with an unusual name: {name!r}")
    conn = await asyncpg.connect(target.admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template.database_name}"')
    finally:
        await conn.close()


@contextmanager
def serve(cfg: BenchConfig, side: Side, label: str) -> Iterator[Server]:
    """The side's ``aisoule serve``; refuses to measure code other than the side's."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / f"{label}-{side.name}.log"
    with Server(cfg, log, code=side.root) as server:
        lines = [ln for ln in log.read_text().splitlines() if ln.startswith("aisoule code: ")]
        got = lines[0].removeprefix("aisoule code: ") if lines else "(not printed)"
        if got != side.module:
            raise SystemExit(f"the {side.name} server runs {got}, not {side.module}")
        yield server


def _quiet(args: argparse.Namespace, database: str) -> None:
    cpu.wait_for_quiet(database, max_wait=args.quiet_wait)


# -- list, tag, upsert ---------------------------------------------------------------------------


async def _check_totals(cfg: BenchConfig) -> str:
    """The API's totals against COUNT(*): the side serves this database correctly."""
    expected = await seed.database_totals(cfg.asyncpg_dsn, cfg.workspace_id)
    _, everyone = await asyncio.to_thread(
        http_json, f"{cfg.base_url}/v1/contacts?limit=1", key=cfg.api_key
    )
    _, vip = await asyncio.to_thread(
        http_json, f"{cfg.base_url}/v1/contacts?tag={seed.VIP_TAG}&limit=1", key=cfg.api_key
    )
    got = (everyone["pagination"]["total"], vip["pagination"]["total"])
    if got != (expected["contacts"], expected["vip"]):
        raise SystemExit(f"the API reports totals {got}, the tables {expected}")
    return f"all {got[0]:,}, {seed.VIP_TAG} {got[1]:,}"


def run_contacts(args: argparse.Namespace, sides: list[Side], out: dict[str, Any]) -> None:
    cfg = Config(
        database_url=args.database_url,
        contacts=args.contacts,
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        threads=args.threads,
        workers=args.workers,
        port=args.port,
    )
    after = sides[1]
    if args.skip_seed:
        step(f"list, tag, upsert: reusing {cfg.database_name}; new API key")
        setup = _setup(cfg, after)
    else:
        step(f"list, tag, upsert: fresh {cfg.database_name}, {cfg.contacts:,} contacts")
        setup = _fresh(cfg, after)
    cfg.api_key = prepare.create_api_key(setup)
    asyncio.run(prepare.load_identity(cfg))
    if not args.skip_seed:
        asyncio.run(seed.seed(cfg.asyncpg_dsn, cfg.workspace_id, cfg.contacts))
    totals = asyncio.run(seed.database_totals(cfg.asyncpg_dsn, cfg.workspace_id))
    out["contacts"] = totals["contacts"]
    noise = argparse.Namespace(
        database_name=cfg.database_name,
        quiet_wait=args.quiet_wait,
        noise_limit=args.noise_limit,
        retries=args.retries,
    )
    checked: set[str] = set()
    r = phone_ranges(cfg.contacts, 0)
    upsert_args = [str(r[k]) for k in ("existing_lo", "existing_hi", "new_lo", "new_hi")]
    upsert_args.append(str(r["existing_percent"]))
    for s in SCENARIOS:
        if s.name not in args.scenarios:
            continue
        runs = out["runs"].setdefault(s.name, [])
        for rnd in range(args.rounds):
            for side in sides:
                with serve(cfg, side, s.name) as server:
                    if side.name not in checked:
                        totals_line = asyncio.run(_check_totals(cfg))
                        print(f"  {side.name}: API totals {totals_line} (match the tables)")
                        checked.add(side.name)

                    def once(s: Scenario = s, pid: int = server.pid) -> WrkResult:
                        script_args = upsert_args if s.wrk_script else None
                        if s.name == "upsert":
                            asyncio.run(_checkpoint(cfg))
                        kw: dict[str, Any] = {
                            "key": cfg.api_key,
                            "connections": cfg.connections,
                            "threads": cfg.threads,
                            "script": s.wrk_script,
                            "script_args": script_args,
                            "database": cfg.database_name,
                        }
                        if cfg.warmup:
                            run_wrk(cfg.base_url + s.path, duration=cfg.warmup, **kw)
                        return run_wrk(
                            cfg.base_url + s.path, duration=cfg.duration, server_pid=pid, **kw
                        )

                    res, tries = _least_noisy(once, f"{s.name} ({side.name})", noise)
                run = {
                    "round": rnd + 1,
                    "side": side.name,
                    "rps": res.rps,
                    "p50_ms": res.p50_ms,
                    "p99_ms": res.p99_ms,
                    "requests": res.requests,
                    "errors": res.error_count,
                    "counters": res.counters,
                    "app_cpu_ms": res.cpu.get("server", 0.0) * 1000 / max(res.requests, 1),
                    "pg_cpu_ms": res.cpu.get("postgres", 0.0) * 1000 / max(res.requests, 1),
                    "other_cores": res.cpu.get("other", 0.0) / res.duration_s,
                    "attempts": tries,
                }
                runs.append(run)
                print(
                    f"  {s.name:7} round {rnd + 1} {side.name:6} {res.rps:8,.0f} req/s  "
                    f"p50 {res.p50_ms:6.1f} / p99 {res.p99_ms:6.1f} ms  app "
                    f"{run['app_cpu_ms']:.2f} ms/req  errors {res.error_count}  "
                    f"background {run['other_cores']:.2f} cores",
                    flush=True,
                )


# -- webhook ingest ------------------------------------------------------------------------------


def run_webhooks(args: argparse.Namespace, sides: list[Side], out: dict[str, Any]) -> None:
    cfg = Config(
        database_url=_url(args.database_url, args.database_name + "_hooks"),
        contacts=0,
        duration=0,
        warmup=0,
        connections=args.hook_connections,
        threads=1,
        workers=1,
        port=args.port + 1,
    )
    template = replace(cfg, database_url=_url(args.database_url, args.database_name + "_hooks_t"))
    step(f"webhook ingest: {args.messages:,} messages seeded once in {template.database_name}")
    _fresh(template, sides[1])
    asyncio.run(webhooks.seed(template, args.messages))
    runs = out["runs"].setdefault("webhooks", [])
    for rnd in range(args.rounds):
        for side in sides:
            asyncio.run(_clone(template, cfg))
            _quiet(args, cfg.database_name)
            with serve(cfg, side, "webhooks"):
                res = asyncio.run(
                    webhooks.measure(cfg, args.messages, args.hook_batch, cfg.connections)
                )
            if res.read != res.messages:
                raise SystemExit(f"{side.name}: {res.read} of {res.messages} messages at read")
            runs.append(
                {
                    "round": rnd + 1,
                    "side": side.name,
                    "events": res.events,
                    "ingest_events_s": res.ingest_rate,
                    "end_to_end_events_s": res.end_to_end_rate,
                    "ingest_s": res.ingest_seconds,
                    "total_s": res.total_seconds,
                }
            )
            print(
                f"  webhooks round {rnd + 1} {side.name:6} accepted {res.ingest_rate:8,.0f} "
                f"events/s, end to end {res.end_to_end_rate:8,.0f} events/s "
                f"({res.total_seconds:.2f} s)",
                flush=True,
            )


# -- send latency --------------------------------------------------------------------------------


async def _drained(cfg: BenchConfig, limit: float) -> None:
    """Every message sent and read, every webhook applied: nothing of this run reaches the next."""
    conn = await asyncpg.connect(cfg.asyncpg_dsn)
    try:
        deadline = time.monotonic() + limit
        while True:
            left = await conn.fetchval(
                "SELECT (SELECT count(*) FROM messages WHERE direction = 'outbound'"
                " AND status NOT IN ('read', 'failed'))"
                " + (SELECT count(*) FROM webhook_events WHERE processed_at IS NULL)"
            )
            if left == 0:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"{left} messages or webhooks still pending after {limit:.0f} s")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def _latency(values: list[float], statuses: dict[int, int]) -> dict[str, Any]:
    return {
        "p50_ms": statistics.median(values),
        "p90_ms": send._percentile(values, 90),
        "p99_ms": send._percentile(values, 99),
        "max_ms": max(values),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def _emulator_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"http://127.0.0.1:{port}/_emulator/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"the emulator did not start; see {LOG_DIR}/send-emulator.log")
            await asyncio.sleep(0.1)


def run_send(args: argparse.Namespace, sides: list[Side], out: dict[str, Any]) -> None:
    port = args.port + 2
    emulator_port = args.port + 50
    cfg = Config(
        database_url=_url(args.database_url, args.database_name + "_send"),
        contacts=send.CONTACTS,
        duration=args.duration,
        warmup=3,
        connections=16,
        threads=1,
        workers=1,
        port=port,
        extra_env={
            "AISOULE_EMULATOR": f"http://127.0.0.1:{emulator_port}",
            "AISOULE_SANDBOX_ACCOUNTS": "true",
            "AISOULE_EMULATOR_THROUGHPUT_PER_SECOND": "1000",
            "AISOULE_EMULATOR_WEBHOOK_URL": f"http://127.0.0.1:{port}/webhooks/whatsapp",
        },
    )
    step(f"send latency: {cfg.database_name}, one emulator (AFTER code) for both sides")
    setup = _setup(cfg, sides[1])
    asyncio.run(prepare.recreate_database(cfg))
    subprocess.run([aisoule_bin(), "migrate"], env=setup.app_env(), check=True)
    send._free(emulator_port)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / "send-emulator.log").open("wb") as emu_log:
        emulator = subprocess.Popen(
            [aisoule_bin(), "emulator", "--port", str(emulator_port)],
            env=setup.app_env(),
            stdout=emu_log,
            stderr=subprocess.STDOUT,
        )
    try:
        asyncio.run(_emulator_up(emulator_port, emulator))
        prepare.create_user(setup)  # the sandbox account is created with the workspace
        key = prepare.create_api_key(setup)
        rng = random.Random(9)
        phones = [f"+9198{rng.randrange(10**7, 10**8)}" for _ in range(send.CONTACTS)]
        with serve(cfg, sides[1], "send-setup"):
            for phone in phones:
                status, body = http_json(
                    f"{cfg.base_url}/v1/contacts", key=key, method="POST", body={"phone": phone}
                )
                assert status in (200, 201), body
        asyncio.run(send._open_windows(cfg, phones))
        url = f"{cfg.base_url}/api/messages/send"

        def body(i: int) -> dict[str, object]:
            return {"to": phones[i % len(phones)], "text": {"body": f"bench {i}"}}

        runs = out["runs"].setdefault("send", [])
        first = args.rates[0]
        health_seconds = min(args.duration, 10)
        for rnd in range(args.rounds):
            for side in sides:
                _quiet(args, cfg.database_name)
                with serve(cfg, side, "send"):
                    asyncio.run(send._open_loop(url, key, first, cfg.warmup, body))
                    asyncio.run(_drained(cfg, 60))
                    health = asyncio.run(
                        send._open_loop(f"{cfg.base_url}/healthz", key, first, health_seconds, None)
                    )
                    run: dict[str, Any] = {
                        "round": rnd + 1,
                        "side": side.name,
                        "healthz": _latency(*health),
                        "rates": {},
                    }
                    for rate in args.rates:
                        sends, statuses = asyncio.run(
                            send._open_loop(url, key, rate, args.duration, body)
                        )
                        run["rates"][f"{rate:g}"] = _latency(sends, statuses)
                        asyncio.run(_drained(cfg, 120))  # before the next rate, or side
                runs.append(run)
                summary = ", ".join(
                    f"{r}/s p50 {v['p50_ms']:.1f} p99 {v['p99_ms']:.1f} ms"
                    for r, v in run["rates"].items()
                )
                print(
                    f"  send round {rnd + 1} {side.name:6} healthz p50 "
                    f"{run['healthz']['p50_ms']:.1f} ms; {summary}",
                    flush=True,
                )
                bad = {
                    r: v["statuses"]
                    for r, v in run["rates"].items()
                    if v["statuses"].get("202", 0) < sum(v["statuses"].values()) * 0.99
                }
                if bad:
                    raise SystemExit(f"{side.name}: fewer than 99% of the sends accepted: {bad}")
    finally:
        emulator.terminate()
        emulator.wait(10)


# -- batch cost (after only) ---------------------------------------------------------------------

# bench/ from this tree (imported first, from the working directory), aisoule from the side.
_BATCH_LAUNCH = (
    "import sys, bench; sys.path.insert(0, sys.argv.pop(1)); import aisoule; "
    "print('aisoule code:', aisoule.__file__, flush=True); "
    "from bench.batch import main; main()"
)


def run_batch(args: argparse.Namespace, sides: list[Side], out: dict[str, Any]) -> None:
    after = sides[1]
    if not (after.root / "aisoule" / "messages" / "service.py").read_text().count("enqueue_batch"):
        print("  the AFTER code has no enqueue_batch: skipped")
        return
    step(f"batch cost: bench/batch.py on the AFTER code ({after.commit}), {args.batch_size} msgs")
    _quiet(args, args.database_name + "_batch")
    env = after.env(dict(os.environ))
    env["AISOULE_BENCH_DATABASE_URL"] = args.database_url
    cmd = [sys.executable, "-c", _BATCH_LAUNCH, str(after.root)]
    cmd += ["--size", str(args.batch_size), "--rounds", str(args.batch_rounds)]
    cmd += ["--database", args.database_name + "_batch"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    print(proc.stdout, end="", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench.batch failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    lines = proc.stdout.splitlines()
    code = next((ln for ln in lines if ln.startswith("aisoule code: ")), "")
    if code.removeprefix("aisoule code: ") != after.module:
        raise SystemExit(f"bench.batch ran {code!r}, not {after.module}")
    table = [ln for ln in lines if ln.startswith("|")]
    extra = [ln for ln in lines if ln.startswith(("every round", "median of rounds"))]
    out["batch"] = {"table": table, "notes": extra, "size": args.batch_size}


# -- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Metric:
    key: str  # scenario
    title: str
    unit: str
    higher_is_better: bool
    pick: Callable[[dict[str, Any]], float]
    judged: bool = True


def metrics(results: dict[str, Any]) -> list[Metric]:
    titles = {s.name: s.title for s in SCENARIOS}
    out = [
        Metric(name, titles[name], "req/s", True, lambda r: r["rps"])
        for name in ("list", "tag", "upsert")
        if name in results["runs"]
    ]
    if "webhooks" in results["runs"]:
        out += [
            Metric(
                "webhooks",
                "status webhooks, end to end (accepted and applied)",
                "events/s",
                True,
                lambda r: r["end_to_end_events_s"],
            ),
            Metric(
                "webhooks",
                "status webhooks, accepted (200)",
                "events/s",
                True,
                lambda r: r["ingest_events_s"],
            ),
        ]
    if "send" in results["runs"]:
        rates = list(results["runs"]["send"][0]["rates"])
        for rate in rates:
            for q in ("p50", "p99"):
                out.append(
                    Metric(
                        "send",
                        f"POST /api/messages/send at {rate}/s, {q}",
                        "ms",
                        False,
                        functools.partial(_send_figure, rate=rate, key=f"{q}_ms"),
                    )
                )
        out.append(
            Metric(
                "send",
                f"GET /healthz at {rates[0]}/s, p50 (control: the server's floor)",
                "ms",
                False,
                lambda r: r["healthz"]["p50_ms"],
                judged=False,
            )
        )
    return out


def _send_figure(run: dict[str, Any], *, rate: str, key: str) -> float:
    return float(run["rates"][rate][key])


def summarize(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for m in metrics(results):
        runs = results["runs"][m.key]
        per = {side: [m.pick(r) for r in runs if r["side"] == side] for side in ("before", "after")}
        before, after = statistics.median(per["before"]), statistics.median(per["after"])
        change = (after / before - 1) * 100 if before else 0.0
        worse = -change if m.higher_is_better else change
        rows.append(
            {
                "scenario": m.key,
                "metric": m.title,
                "unit": m.unit,
                "higher_is_better": m.higher_is_better,
                "before": before,
                "after": after,
                "before_rounds": per["before"],
                "after_rounds": per["after"],
                "change_pct": change,
                "judged": m.judged,
                "within": worse <= LIMIT if m.judged else None,
            }
        )
    return rows


def _fmt(value: float, unit: str) -> str:
    return f"{value:,.1f} ms" if unit == "ms" else f"{value:,.0f} {unit}"


def markdown(results: dict[str, Any]) -> str:
    rows = results["summary"]
    b, a = results["sides"]["before"], results["sides"]["after"]
    cfg = results["config"]
    m = results["machine"]
    failed = [r for r in rows if r["within"] is False]
    lines = [
        "## Issue 9: before/after",
        "",
        f"Produced by `{results['command']}` on {results['date']} ({results['elapsed_s']:.0f} s). "
        f"Before: commit `{b['commit']}`; after: commit `{a['commit']}`"
        + (
            f" (uncommitted changes under aisoule/: before {b['changes']}, after {a['changes']})"
            if b["changes"] or a["changes"]
            else ""
        )
        + f". Machine: {m['cpus']} CPUs ({m['cpu_model']}), PostgreSQL {m['postgresql']}, "
        f"{m['wrk']}. Each scenario ran {cfg['rounds']} round(s) alternating before, after; "
        "the table shows each side's median round. Databases created and migrated by the AFTER "
        "code; each server ran its own checkout's code (checked). "
        f"list/tag/upsert: {results.get('contacts', cfg['contacts']):,} contacts, "
        f"`aisoule serve --workers {cfg['workers']}`, wrk -t{cfg['threads']} "
        f"-c{cfg['connections']} -d{cfg['duration']}s after a {cfg['warmup']} s warm-up; "
        f"webhooks: {cfg['messages']:,} messages x 3 statuses, {cfg['hook_batch']} per delivery, "
        f"{cfg['hook_connections']} connections, a fresh copy of the seeded database per run; "
        f"send: open loop at {', '.join(f'{r:g}' for r in cfg['rates'])} requests/s for "
        f"{cfg['duration']} s each, one `aisoule serve` and one shared `aisoule emulator`.",
        "",
        "| Scenario | before (median) | after (median) | change % | within 5%? |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        verdict = "(control)" if r["within"] is None else "yes" if r["within"] else "**no**"
        better = "higher" if r["higher_is_better"] else "lower"
        lines.append(
            f"| {r['metric']} ({r['unit']}, {better} is better) | {_fmt(r['before'], r['unit'])} "
            f"| {_fmt(r['after'], r['unit'])} | {r['change_pct']:+.1f}% | {verdict} |"
        )
    lines += [
        "",
        "Every round (before; after):",
        "",
        "| Scenario | before | after |",
        "|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['metric']} | "
            + " / ".join(_fmt(v, r["unit"]) for v in r["before_rounds"])
            + " | "
            + " / ".join(_fmt(v, r["unit"]) for v in r["after_rounds"])
            + " |"
        )
    wrk_names = [n for n in ("list", "tag", "upsert") if n in results["runs"]]
    if wrk_names:
        lines += [
            "",
            "CPU milliseconds per request (median round; less sensitive to the machine's drift "
            "than req/s), p99 latency, and errors:",
            "",
            "| Scenario | app before | app after | PostgreSQL before | PostgreSQL after "
            "| p99 before | p99 after | non-2xx / socket errors |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name in wrk_names:
            runs = results["runs"][name]

            def med(key: str, side: str, runs: list[dict[str, Any]] = runs) -> float:
                return statistics.median(r[key] for r in runs if r["side"] == side)

            errors = sum(r["errors"] for r in runs)
            lines.append(
                f"| {name} | {med('app_cpu_ms', 'before'):.2f} | {med('app_cpu_ms', 'after'):.2f} "
                f"| {med('pg_cpu_ms', 'before'):.2f} | {med('pg_cpu_ms', 'after'):.2f} "
                f"| {med('p99_ms', 'before'):.1f} ms | {med('p99_ms', 'after'):.1f} ms "
                f"| {errors} |"
            )
        noisy = [
            f"{name} round {r['round']} {r['side']} ({r['other_cores']:.2f} cores)"
            for name in wrk_names
            for r in results["runs"][name]
            if r["other_cores"] > 0.25
        ]
        if noisy:
            lines += ["", "Other processes were busy during: " + ", ".join(noisy) + "."]
    batch = results.get("batch")
    if batch:
        lines += [
            "",
            f"Cost of sending a batch of {batch['size']} messages through `enqueue_batch` against "
            f"the single-message path (`python -m bench.batch`, the AFTER code only: the code "
            "before has no `enqueue_batch`):",
            "",
            *batch["table"],
            "",
            *batch["notes"],
        ]
    lines += [
        "",
        (
            f"**{len(failed)} figure(s) more than {LIMIT:g}% worse**: "
            + ", ".join(r["metric"] for r in failed)
            + "."
            if failed
            else f"No figure is more than {LIMIT:g}% worse."
        ),
    ]
    return "\n".join(lines)


def write_doc(results: dict[str, Any]) -> None:
    """Append or replace the section "Issue 9: before/after" in docs/benchmarks.md."""
    write_section(SECTION, markdown(results))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    p.add_argument("--before", help="checkout of the code before (a git worktree)")
    p.add_argument("--after", help="checkout of the code after")
    p.add_argument("--rounds", type=int, default=2, help="rounds per scenario and side (2)")
    p.add_argument("--duration", type=int, default=15, help="seconds per measured run (15)")
    p.add_argument("--warmup", type=int, default=5, help="wrk warm-up seconds per run (5)")
    p.add_argument("--contacts", type=int, default=1_000_000, help="contacts seeded (1000000)")
    p.add_argument("--skip-seed", action="store_true", help="reuse the seeded contacts database")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    p.add_argument("--workers", type=int, default=2, help="aisoule serve --workers for wrk (2)")
    p.add_argument("--messages", type=int, default=10_000, help="webhooks: messages (10000)")
    p.add_argument("--hook-batch", type=int, default=10, help="webhooks: statuses/delivery (10)")
    p.add_argument("--hook-connections", type=int, default=32, help="webhooks: clients (32)")
    p.add_argument(
        "--rates",
        type=lambda v: [float(x) for x in v.split(",")],
        default=[20.0, 50.0, 100.0],
        help="send: requests per second, one run each (20,50,100)",
    )
    p.add_argument("--batch-size", type=int, default=500, help="batch: messages (500)")
    p.add_argument("--batch-rounds", type=int, default=3, help="batch: rounds per path (3)")
    p.add_argument(
        "--only",
        action="append",
        choices=[*PARTS, *(s.name for s in SCENARIOS)],
        help="run only this part (repeatable): contacts (= list, tag, upsert), list, tag, "
        "upsert, webhooks, send, batch",
    )
    p.add_argument("--port", type=int, default=8140, help="first of the ports used (8140)")
    p.add_argument(
        "--database-url",
        default=os.environ.get(
            "AISOULE_BENCH_COMPARE_DATABASE_URL",
            "postgresql://postgres@127.0.0.1:5432/aisoule_bench_compare",
        ),
        help="the contacts database, DROPPED and recreated; the others are named after it "
        "(_hooks, _hooks_t, _send, _batch) (env AISOULE_BENCH_COMPARE_DATABASE_URL)",
    )
    p.add_argument("--quiet-wait", type=float, default=60, help="max s to wait for quiet (60)")
    p.add_argument("--noise-limit", type=float, default=0.25, help="see python -m bench (0.25)")
    p.add_argument("--retries", type=int, default=1, help="repeats of a noisy wrk run (1)")
    p.add_argument("--write", action="store_true", help="write its docs/benchmarks.md section")
    p.add_argument(
        "--report-only",
        action="store_true",
        help=f"measure nothing: print (and with --write, write) the report of {RESULTS}",
    )
    args = p.parse_args(argv)
    if not args.report_only and not (args.before and args.after):
        p.error("--before and --after are required")
    parts = set(args.only or PARTS)
    names = {s.name for s in SCENARIOS}
    args.scenarios = names if "contacts" in parts else parts & names
    args.parts = {"contacts"} if args.scenarios else set()
    args.parts |= parts - names - {"contacts"}
    args.database_name = BenchConfig(args.database_url, 0, 0, 0, 0, 0, 0).database_name
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        results = json.loads(RESULTS.read_text())
    else:
        if not sys.platform.startswith("linux"):
            raise SystemExit("the benchmark reads /proc for CPU accounting: Linux only")
        started = time.monotonic()
        sides = [load_side("before", args.before), load_side("after", args.after)]
        for s in sides:
            print(f"{s.name}: {s.root} at {s.commit} (aisoule from {s.module})")
        ensure_wrk()
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        results = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python -m bench.compare "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "sides": {
                s.name: {"root": str(s.root), "commit": s.commit, "changes": s.changes}
                for s in sides
            },
            "config": {k: getattr(args, k) for k in CONFIG_KEYS},
            "runs": {},
        }
        runners = {
            "contacts": run_contacts,
            "webhooks": run_webhooks,
            "send": run_send,
            "batch": run_batch,
        }
        for part in PARTS:
            if part in args.parts:
                runners[part](args, sides, results)
        version = asyncio.run(_pg_version(args.database_url))
        results["machine"] = machine_info(version)
        results["elapsed_s"] = time.monotonic() - started
        results["summary"] = summarize(results)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    print("\n" + text)
    print(f"\nraw figures: {RESULTS}")
    if args.write:
        write_doc(results)
        print("docs/benchmarks.md: section 'Issue 9: before/after' written")
    return 0


async def _pg_version(url: str) -> str:
    cfg = BenchConfig(url, 0, 0, 0, 0, 0, 0)
    conn = await asyncpg.connect(cfg.admin_dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
