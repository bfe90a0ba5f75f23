"""``python -m bench.dashboard``: the web app's contacts page at 1,000,000 contacts on PostgreSQL.

One ``aisoule serve`` (bench/server.py, the production settings of the other benchmarks) on a
database seeded with bench/seed.py (COPY). The bench logs in through ``POST /api/auth/login`` and
requests the contacts page with that session cookie over real HTTP, one request at a time
(keep-alive), as a person clicking through the table does:

- server time of each page (the first page, a tag filter, searches): p50 / p95 / max of
  ``--requests`` requests after ``--warmup`` unmeasured ones; the goal is p95 < 100 ms;
- the HTML size of each page (bytes as served, and gzipped for reference);
- time to interactive of the contacts page in headless Chromium (Playwright, /usr/bin/chromium):
  navigation start to DOMContentLoaded (htmx is a deferred script, so it has run by then) and to
  the ``htmx:load`` event htmx fires once it has processed the page; a fresh browser context per
  visit (assets fetched) and a reload in the same context (assets from the cache).

The floors, timed in the same loop (request k of the page, then the page's statement on asyncpg
alone, then request k of ``GET /api/contacts`` with the same filter and page size, 50), so all
three see the same machine: each page's p50 is reported against them as a ratio, and each
statement's plan (EXPLAIN ANALYZE) is kept, so a slow page names its query. ``--repeat`` runs per
page, the median by the page's p95 is reported (this shared VM's speed drifts between runs).

``--write`` puts the table in its own section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import statistics
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.dialects.postgresql import asyncpg as pg_asyncpg

from aisoule.contacts.repository import ContactRepository
from bench import cpu, seed
from bench.env import (
    BENCH_EMAIL,
    BENCH_PASSWORD,
    RESULTS_DIR,
    BenchConfig,
    code_state,
    machine_info,
)
from bench.prepare import create_api_key, create_user, load_identity, migrate, recreate_database
from bench.server import Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
PER_PAGE = 50  # aisoule/dashboard/pages/contacts.py
GOAL_P95_MS = 100.0
ONE = 777_776  # a seeded contact (even: it has an email): phone_of(ONE), contact{ONE}@example.com


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    title: str
    params: dict[str, str]
    # Request k's search, when each request looks for another contact (as people do: the same
    # statement with another pattern, which is what a prepared statement's plan cache sees).
    vary: Callable[[int], str] | None = None

    def at(self, k: int) -> dict[str, str]:
        return self.params if self.vary is None else {**self.params, "q": self.vary(k)}


CASES = (
    Case("first", "first page", {}),
    Case("tag", f"tag filter ({seed.VIP_TAG}, 10%)", {"tag": seed.VIP_TAG}),
    Case("name", "search a common name (Priya, 5%)", {"q": "Priya"}),
    Case(
        "email",
        "search one contact by email, another each request",
        {"q": f"contact{ONE}@example.com"},
        lambda k: f"contact{ONE - 2 * k}@example.com",
    ),
    Case(
        "phone",
        "search one contact by phone, another each request",
        {"q": seed.phone_of(ONE)},
        lambda k: seed.phone_of(ONE - 3 * k),
    ),
    Case("none", "search that matches nobody", {"q": "Zebedee"}),
)


@dataclass
class Timing:
    p50_ms: float
    p95_ms: float
    max_ms: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Timing:
        ordered = sorted(values)
        return cls(
            p50_ms=statistics.median(ordered),
            p95_ms=ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
            max_ms=ordered[-1],
            n=len(ordered),
        )


@dataclass
class CaseResult:
    name: str
    title: str
    path: str
    page: Timing
    html_bytes: int
    html_gzip_bytes: int
    rows: int
    sql: Timing
    sql_plan: str
    api: Timing
    api_total: int
    # Cores other processes used just before each of its three runs (the machine is shared).
    other_cores: list[float] = field(default_factory=list)
    page_p95_runs: list[float] = field(default_factory=list)


@dataclass
class Interactive:
    dcl_cold: Timing
    htmx_cold: Timing
    dcl_warm: Timing
    htmx_warm: Timing
    transferred_cold_bytes: int
    requests_cold: int


@dataclass
class Results:
    date: str
    command: str
    contacts: int
    machine: dict[str, str]
    code: dict[str, str]
    cases: list[CaseResult] = field(default_factory=list)
    interactive: Interactive | None = None


def _config(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        database_url=args.database_url,
        contacts=args.contacts,
        duration=0,
        warmup=0,
        connections=1,
        threads=1,
        workers=1,
        port=args.port,
        skip_seed=args.skip_seed,
    )


class _Recorder:
    """Stands in for the session so that the repository's own ``browse`` builds its statement;
    the bench then runs that statement on asyncpg alone."""

    bind = None

    def __init__(self) -> None:
        self.statements: list[Any] = []

    async def execute(self, statement: Any, *_: Any, **__: Any) -> Any:
        self.statements.append(statement)

        class _Empty:
            def mappings(self) -> _Empty:
                return self

            def all(self) -> list[Any]:
                return []

        return _Empty()


async def _page_sql(workspace_id: str, params: dict[str, str]) -> str:
    recorder = _Recorder()
    repo = ContactRepository(recorder)  # type: ignore[arg-type]
    await repo.browse(
        uuid.UUID(workspace_id), limit=PER_PAGE, tag=params.get("tag"), q=params.get("q")
    )
    compiled = recorder.statements[0].compile(
        dialect=pg_asyncpg.dialect(), compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


def _plan_summary(plan: dict[str, Any]) -> str:
    """The plan's nodes, outermost first: ``Limit > Nested Loop > Index Scan (ix_...)``."""
    parts: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        label = node["Node Type"]
        if "Index Name" in node:
            label += f" ({node['Index Name']})"
        elif "Relation Name" in node:
            label += f" ({node['Relation Name']})"
        parts.append(label)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return " > ".join(parts)


def _login(base_url: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=60)
    response = client.post(
        "/api/auth/login", json={"email": BENCH_EMAIL, "password": BENCH_PASSWORD}
    )
    if response.status_code != 200:
        raise SystemExit(f"logging in failed: {response.status_code} {response.text[:300]}")
    return client


def _rows_of(html: str) -> int:
    return html.count('name="ids"')


def _measure_case(
    cfg: BenchConfig, client: httpx.Client, case: Case, args: argparse.Namespace
) -> CaseResult:
    """``--repeat`` runs; in each, request k of the page, the page's statement on the database
    alone and request k of /api/contacts one after the other, so that the three see the same
    machine. The median run by the page's p95 is kept."""

    def page_url(k: int) -> str:
        query = urllib.parse.urlencode(case.at(k))
        return "/contacts" + (f"?{query}" if query else "")

    def api_url(k: int) -> str:
        return "/api/contacts?" + urllib.parse.urlencode({**case.at(k), "per_page": PER_PAGE})

    total = args.warmup + args.requests
    loop = asyncio.new_event_loop()
    statements = [
        loop.run_until_complete(_page_sql(cfg.workspace_id, case.at(k))) for k in range(total)
    ]
    conn = loop.run_until_complete(asyncpg.connect(cfg.asyncpg_dsn))
    runs: list[tuple[Timing, Timing, Timing]] = []
    other: list[float] = []
    try:
        for _ in range(args.repeat):
            other.append(cpu.wait_for_quiet(cfg.database_name, max_wait=args.quiet_wait))
            page_ms: list[float] = []
            sql_ms: list[float] = []
            api_ms: list[float] = []
            for k in range(total):
                t0 = time.perf_counter()
                response = client.get(page_url(k))
                body = response.content
                t1 = time.perf_counter()
                loop.run_until_complete(conn.fetch(statements[k]))
                t2 = time.perf_counter()
                api_response = client.get(api_url(k), headers={"X-API-Key": cfg.api_key})
                _ = api_response.content
                t3 = time.perf_counter()
                for r in (response, api_response):
                    if r.status_code != 200:
                        raise SystemExit(
                            f"{r.request.url} answered {r.status_code}: {r.text[:300]}"
                        )
                if k >= args.warmup:
                    page_ms.append((t1 - t0) * 1000)
                    sql_ms.append((t2 - t1) * 1000)
                    api_ms.append((t3 - t2) * 1000)
            runs.append((Timing.of(page_ms), Timing.of(sql_ms), Timing.of(api_ms)))
        raw = loop.run_until_complete(
            conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {statements[-1]}")
        )
    finally:
        loop.run_until_complete(conn.close())
        loop.close()
    plan = _plan_summary(json.loads(raw)[0] if isinstance(raw, str) else raw[0])
    page, sql_timing, api = sorted(runs, key=lambda r: r[0].p95_ms)[len(runs) // 2]
    result = CaseResult(
        name=case.name,
        title=case.title,
        path=page_url(0),
        page=page,
        html_bytes=len(body),
        html_gzip_bytes=len(gzip.compress(body, 6)),
        rows=_rows_of(response.text),
        sql=sql_timing,
        sql_plan=plan,
        api=api,
        api_total=api_response.json()["data"]["total"],
        other_cores=[round(x, 2) for x in other],
        page_p95_runs=[round(r[0].p95_ms, 1) for r in runs],
    )
    print(
        f"  {case.name:6} page p50 {page.p50_ms:6.1f} p95 {page.p95_ms:6.1f} ms "
        f"(runs' p95 {result.page_p95_runs}; {result.rows} rows, {result.html_bytes:,} B) | "
        f"SQL p50 {sql_timing.p50_ms:6.1f} | /api p50 {api.p50_ms:6.1f} ms\n         plan: {plan}",
        flush=True,
    )
    return result


_READY_SCRIPT = """
document.addEventListener('htmx:load', () => {
  if (window.__htmxLoaded === undefined) window.__htmxLoaded = performance.now();
});
"""

_TIMES = """
() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource');
  return {
    dcl: nav.domContentLoadedEventEnd - nav.startTime,
    htmx: (window.__htmxLoaded ?? NaN) - nav.startTime,
    transferred: nav.transferSize + resources.reduce((n, r) => n + (r.transferSize || 0), 0),
    requests: 1 + resources.length,
  };
}
"""


def _interactive(cfg: BenchConfig, cookies: httpx.Cookies, visits: int) -> Interactive:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    jar = [
        {"name": c.name, "value": c.value or "", "url": cfg.base_url}
        for c in cookies.jar
        if c.value is not None
    ]
    url = f"{cfg.base_url}/contacts"
    cold: list[dict[str, float]] = []
    warm: list[dict[str, float]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for i in range(visits + 2):  # the first two: warm-up, not counted
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.add_cookies(jar)  # type: ignore[arg-type]
                context.add_init_script(_READY_SCRIPT)
                page = context.new_page()
                page.goto(url, wait_until="load")
                page.wait_for_function("window.__htmxLoaded !== undefined")
                if page.url != url:
                    raise SystemExit(f"the browser landed on {page.url}, not {url}")
                if i >= 2:
                    cold.append(page.evaluate(_TIMES))
                page.reload(wait_until="load")
                page.wait_for_function("window.__htmxLoaded !== undefined")
                if i >= 2:
                    warm.append(page.evaluate(_TIMES))
                context.close()
        finally:
            browser.close()
    return Interactive(
        dcl_cold=Timing.of([t["dcl"] for t in cold]),
        htmx_cold=Timing.of([t["htmx"] for t in cold]),
        dcl_warm=Timing.of([t["dcl"] for t in warm]),
        htmx_warm=Timing.of([t["htmx"] for t in warm]),
        transferred_cold_bytes=int(statistics.median(t["transferred"] for t in cold)),
        requests_cold=int(statistics.median(t["requests"] for t in cold)),
    )


def _ms(t: Timing) -> str:
    return f"{t.p50_ms:.1f} / {t.p95_ms:.1f} ms"


def markdown(r: Results, args: argparse.Namespace) -> str:
    m = r.machine
    lines = [
        "## The web app's contacts page at 1,000,000 contacts",
        "",
        f"Goal: server time p95 under {GOAL_P95_MS:.0f} ms for the first page, a tag filter and "
        "a search.",
        "",
        f"Produced by `{r.command}` on {r.date}, commit `{r.code['commit']}`"
        + (" (with uncommitted changes)" if r.code.get("aisoule_changes", "0") != "0" else "")
        + f". {m['cpus']} cores ({m['cpu_model']}), {m['memory']}, {m['os']}, Python "
        f"{m['python']}, PostgreSQL {m['postgresql']}; {r.contacts:,} contacts (bench/seed.py). "
        "One `aisoule serve` process; the bench logs in (`POST /api/auth/login`) and requests "
        f"each page with the session cookie, one request at a time over keep-alive HTTP: "
        f"{args.warmup} unmeasured, then {args.requests} measured (client-side, request to last "
        "byte, loopback); the searches by email and phone look for another contact each time. "
        "The floors are timed in the same loop, each right after the page's request, so all "
        "three see the same machine: the page's own list statement (built by the repository's "
        "`browse`, 51 rows) on asyncpg alone, and the JSON API's `GET /api/contacts` with the "
        f"same filter and `per_page={PER_PAGE}` (the API's search also counts every match; /v1 "
        f"has no search). {args.repeat} runs per page; the table shows the median run by the "
        "page's p95, and each run's p95 in brackets.",
        "",
        "| Page | server p50 / p95 (runs' p95) | goal | HTML (gzip) | SQL alone p50 / p95 | page / SQL (p50) "
        "| /api p50 / p95 | page / /api (p50) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in r.cases:
        met = "yes" if c.page.p95_ms < GOAL_P95_MS else "**no**"
        lines.append(
            f"| `{c.path}` ({c.title}, {c.rows} rows) | {_ms(c.page)} "
            f"({', '.join(f'{x:.0f}' for x in c.page_p95_runs)}) | {met} | "
            f"{c.html_bytes / 1024:.1f} KiB ({c.html_gzip_bytes / 1024:.1f} KiB) | {_ms(c.sql)} | "
            f"{c.page.p50_ms / max(c.sql.p50_ms, 1e-6):.1f}x | {_ms(c.api)} | "
            f"{c.page.p50_ms / max(c.api.p50_ms, 1e-6):.2f}x |"
        )
    loads = [x for c in r.cases for x in c.other_cores]
    if loads:
        lines += [
            "",
            f"The machine is shared: just before the runs, other processes used {min(loads):.2f} "
            f"to {max(loads):.2f} of its {m['cpus']} cores (each run waited up to "
            f"{args.quiet_wait:.0f} s for them to go under 0.25).",
        ]
    lines += ["", "Plans of the list statements (EXPLAIN ANALYZE, outermost node first):", ""]
    for c in r.cases:
        lines.append(f"- {c.name}: {c.sql_plan}")
    ti = r.interactive
    if ti is not None:
        lines += [
            "",
            f"Time to interactive of `/contacts` in headless Chromium ({CHROMIUM}, Playwright), "
            f"{ti.dcl_cold.n} visits, p50 / p95, from navigation start:",
            "",
            "| Visit | DOMContentLoaded (htmx has run) | htmx:load (page processed) |",
            "|---|---:|---:|",
            f"| first visit (new context: {ti.requests_cold} requests, "
            f"{ti.transferred_cold_bytes / 1024:.0f} KiB transferred) | {_ms(ti.dcl_cold)} | "
            f"{_ms(ti.htmx_cold)} |",
            f"| reload (assets cached) | {_ms(ti.dcl_warm)} | {_ms(ti.htmx_warm)} |",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    p.add_argument("--contacts", type=int, default=1_000_000, help="contacts to seed (1000000)")
    p.add_argument("--requests", type=int, default=200, help="measured requests per page (200)")
    p.add_argument("--warmup", type=int, default=20, help="unmeasured requests first (20)")
    p.add_argument("--repeat", type=int, default=3, help="runs per page; the median counts (3)")
    p.add_argument("--visits", type=int, default=20, help="browser visits measured (20)")
    p.add_argument("--port", type=int, default=8103, help="port of the server (8103)")
    p.add_argument("--skip-seed", action="store_true", help="reuse the seeded database")
    p.add_argument("--only", action="append", choices=[c.name for c in CASES], help="repeatable")
    p.add_argument("--quiet-wait", type=float, default=30, help="wait for an idle machine (30 s)")
    p.add_argument("--write", action="store_true", help="write its docs/benchmarks.md section")
    p.add_argument(
        "--database-url",
        default=os.environ.get(
            "AISOULE_BENCH_DASHBOARD_DATABASE_URL",
            "postgresql://postgres@127.0.0.1:5432/aisoule_bench_dashboard",
        ),
        help="dedicated database, DROPPED and recreated unless --skip-seed "
        "(env AISOULE_BENCH_DASHBOARD_DATABASE_URL)",
    )
    args = p.parse_args(argv)
    cfg = _config(args)
    if cfg.skip_seed:
        print(f"reusing {cfg.database_name}", flush=True)
    else:
        print(f"fresh database {cfg.database_name}: drop, create, migrate, owner", flush=True)
        asyncio.run(recreate_database(cfg))
        migrate(cfg)
        create_user(cfg)
    cfg.api_key = create_api_key(cfg)
    asyncio.run(load_identity(cfg))
    if not cfg.skip_seed:
        print(f"seeding {cfg.contacts:,} contacts (COPY)", flush=True)
        asyncio.run(seed.seed(cfg.asyncpg_dsn, cfg.workspace_id, cfg.contacts))
    totals = asyncio.run(seed.database_totals(cfg.asyncpg_dsn, cfg.workspace_id))
    results = Results(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        command="python -m bench.dashboard " + " ".join(sys.argv[1:] if argv is None else argv),
        contacts=totals["contacts"],
        machine=machine_info(_pg_version(cfg)),
        code=code_state(),
    )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with Server(cfg, RESULTS_DIR / "dashboard-server.log"):
        client = _login(cfg.base_url)
        try:
            for case in CASES:
                if args.only and case.name not in args.only:
                    continue
                results.cases.append(_measure_case(cfg, client, case, args))
            if args.visits:
                cpu.wait_for_quiet(cfg.database_name, max_wait=args.quiet_wait)
                results.interactive = _interactive(cfg, client.cookies, args.visits)
                ti = results.interactive
                print(
                    f"  browser DOMContentLoaded {_ms(ti.dcl_cold)} (first visit), "
                    f"{_ms(ti.dcl_warm)} (reload); htmx:load {_ms(ti.htmx_cold)}",
                    flush=True,
                )
        finally:
            client.close()
    (RESULTS_DIR / "dashboard.json").write_text(json.dumps(asdict(results), indent=2) + "\n")
    text = markdown(results, args)
    print("\n" + text)
    if args.write:
        from bench.mdsection import write_section

        write_section("dashboard", text)
        print("\nwrote docs/benchmarks.md (section dashboard)")
    missed = [c.name for c in results.cases if c.page.p95_ms >= GOAL_P95_MS]
    if missed:
        print(f"\np95 at or over {GOAL_P95_MS:.0f} ms: {', '.join(missed)}")
    return 0


def _pg_version(cfg: BenchConfig) -> str:
    async def version() -> str:
        conn = await asyncpg.connect(cfg.asyncpg_dsn)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    return asyncio.run(version())


if __name__ == "__main__":
    sys.exit(main())
