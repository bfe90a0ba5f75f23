"""The results table (stdout) and docs/benchmarks.md, both from the results dict of a run."""

from __future__ import annotations

import math
from typing import Any

from bench.wrk_run import WrkResult

Results = dict[str, Any]


def _n(value: float, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def _ms(value: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def api_line(r: WrkResult) -> str:
    errors = f", {r.error_count} ERRORS {r.errors}" if r.error_count else ""
    extra = ""
    if r.counters:
        extra = (
            f", created {r.counters.get('created', 0):,} / updated {r.counters.get('updated', 0):,}"
        )
    return (
        f"{r.rps:8,.0f} req/s  p50 {_ms(r.p50_ms):>5} ms  p99 {_ms(r.p99_ms):>5} ms  "
        f"({r.requests:,} requests{extra}{errors})"
    )


def db_line(tps: float, p50: float, p99: float, errors: int) -> str:
    suffix = f"  {errors} ERRORS" if errors else ""
    return f"{tps:8,.0f} tx/s   p50 {_ms(p50):>5} ms  p99 {_ms(p99):>5} ms{suffix}"


def api_errors(s: dict[str, Any]) -> int:
    api = s.get("api") or {}
    return sum(api.get("errors", {}).values()) + api.get("counters", {}).get("failed", 0)


def verdict(s: dict[str, Any]) -> tuple[bool | None, str]:
    """(met, text): None when the run is not a valid figure (errors)."""
    api = s.get("api")
    if api is None:
        return None, "not run"
    errors = api_errors(s)
    if errors:
        return None, f"invalid: {errors:,} errors"
    misses = []
    if s["target_rps"] is not None and api["rps"] < s["target_rps"]:
        misses.append(f"{api['rps'] / s['target_rps']:.0%} of the target req/s")
    if s["target_p99_ms"] is not None and api["p99_ms"] >= s["target_p99_ms"]:
        misses.append(f"p99 {_ms(api['p99_ms'])} ms ≥ {s['target_p99_ms']:.0f} ms")
    return (not misses), ("yes" if not misses else "no: " + ", ".join(misses))


def target_text(s: dict[str, Any]) -> str:
    parts = []
    if s["target_rps"] is not None:
        parts.append(f"≥ {s['target_rps']:,.0f} req/s")
    if s["target_p99_ms"] is not None:
        parts.append(f"p99 < {s['target_p99_ms']:.0f} ms")
    return ", ".join(parts)


def _ratio(s: dict[str, Any]) -> str:
    api, db = s.get("api"), s.get("pgbench")
    if not api or not db or not db["tps"]:
        return "n/a"
    return f"{api['rps'] / db['tps']:.2f}x (p99 {api['p99_ms'] / db['p99_ms']:.1f}x)"


def _rows(results: Results) -> list[list[str]]:
    rows = []
    for s in results["scenarios"].values():
        api, db = s.get("api") or {}, s.get("pgbench") or {}
        db_err = db.get("failed", 0) + (1 if db.get("aborted") else 0)
        rows.append(
            [
                s["title"],
                _n(api.get("rps", float("nan"))),
                f"{_ms(api.get('p50_ms', float('nan')))} / {_ms(api.get('p99_ms', float('nan')))} ms",
                _n(db.get("tps", float("nan"))) + (f" ({db_err} errors)" if db_err else ""),
                f"{_ms(db.get('p99_ms', float('nan')))} ms",
                _ratio(s),
                target_text(s),
                verdict(s)[1],
            ]
        )
    return rows


HEADERS = [
    "Scenario",
    "API req/s",
    "API p50 / p99",
    "DB-alone tx/s",
    "DB p99",
    "API/DB ratio",
    "Target",
    "Met?",
]


def text_table(results: Results) -> str:
    rows = [HEADERS, *_rows(results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _md_table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    right = right or set()
    out = ["| " + " | ".join(headers) + " |"]
    out.append("|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|")
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def _per(cpu_s: float, count: int) -> float:
    return cpu_s / count * 1000 if count else float("nan")


def _ours(c: dict[str, float]) -> float:
    return c.get("server", 0) + c.get("postgres", 0) + c.get("wrk", 0)


def _split(api: dict[str, Any]) -> str:
    workers = api.get("worker_cpu") or []
    total = sum(workers)
    if len(workers) < 2 or not total:
        return "n/a"
    return " / ".join(f"{w / total:.0%}" for w in workers)


def _cpu_rows(results: Results) -> list[list[str]]:
    rows = []
    for name, s in results["scenarios"].items():
        api = s.get("api")
        if not api:
            continue
        c, n = api["cpu"], api["requests"]
        db = s.get("pgbench") or {}
        dbc = db.get("cpu", {})
        rows.append(
            [
                name,
                f"{_per(c.get('server', 0), n):.2f}",
                _split(api),
                f"{_per(c.get('postgres', 0), n):.2f}",
                f"{_per(c.get('wrk', 0), n):.2f}",
                f"{_ours(c) / api['duration_s']:.2f}",
                f"{c.get('other', 0) / api['duration_s']:.2f}",
                f"{_per(dbc.get('postgres', 0), db.get('transactions', 0)):.2f}",
                f"{_per(dbc.get('client', 0), db.get('transactions', 0)):.2f}",
            ]
        )
    return rows


def _asyncpg_rows(results: Results) -> list[list[str]]:
    rows = []
    for name, s in results["scenarios"].items():
        a = s.get("asyncpg")
        if not a:
            continue
        c = a["cpu"]
        rows.append(
            [
                name,
                _n(a["tps"]) + (f" ({a['errors']} errors)" if a["errors"] else ""),
                f"{_ms(a['p50_ms'])} / {_ms(a['p99_ms'])} ms",
                f"{_per(c.get('client', 0), a['transactions']):.2f}",
                f"{_per(c.get('postgres', 0), a['transactions']):.2f}",
            ]
        )
    return rows


def analysis(results: Results) -> list[str]:
    """Plain statements computed from the figures: what is busy, what caps throughput."""
    cores = float(results["machine"]["cpus"]) if results["machine"]["cpus"].isdigit() else 2.0
    conns = results["config"]["connections"]
    out: list[str] = []
    for s in results["scenarios"].values():
        api, db = s.get("api"), s.get("pgbench")
        if not api:
            continue
        c, n, dur = api["cpu"], api["requests"], api["duration_s"]
        app_ms = _per(c.get("server", 0), n)
        pg_ms = _per(c.get("postgres", 0), n)
        wrk_ms = _per(c.get("wrk", 0), n)
        busy = _ours(c) / dur
        background = c.get("other", 0) / dur
        app_cap = cores / app_ms * 1000 if app_ms else float("inf")
        text = (
            f"**{s['title']}**: {api['rps']:,.0f} req/s, p99 {_ms(api['p99_ms'])} ms. "
            f"The app, PostgreSQL and wrk kept {busy:.2f} of {cores:.0f} cores busy "
            f"(other processes {background:.2f}). Per request the app's workers used "
            f"{app_ms:.2f} ms of CPU, PostgreSQL {pg_ms:.2f} ms and wrk {wrk_ms:.2f} ms: "
            f"the Python side is {app_ms / pg_ms:.1f}x the database's share. "
            if pg_ms
            else ""
        )
        dbc = (db or {}).get("cpu", {})
        db_pg_ms = _per(dbc.get("postgres", 0), (db or {}).get("transactions", 0))
        if pg_ms and db_pg_ms and pg_ms > 2 * db_pg_ms:
            text += (
                f"PostgreSQL itself spent {pg_ms:.2f} ms per API request but {db_pg_ms:.2f} ms per "
                "pgbench transaction of the same statements, so the database-alone figure is an "
                "upper bound the app's way of using the database does not reach. "
            )
        if db and db["tps"]:
            text += (
                f"The same SQL from pgbench ran at {db['tps']:,.0f} tx/s (p99 {_ms(db['p99_ms'])} ms), "
                f"so the API reaches {api['rps'] / db['tps']:.0%} of what the database alone does "
                f"on this machine. "
            )
        workers = api.get("worker_cpu") or []
        if len(workers) >= 2 and sum(workers) and workers[0] / sum(workers) > 0.6:
            text += (
                f"The load was uneven: one worker used {workers[0] / sum(workers):.0%} of the "
                "workers' CPU (each keep-alive connection stays with the worker that accepted "
                "it), so that worker saturated first. "
            )
        met, verdict_text = verdict(s)
        if met is None:
            text += f"The run had errors ({verdict_text}), so it is not a valid figure. "
        elif not met:
            if s["target_rps"] is not None and api["rps"] < s["target_rps"]:
                text += (
                    f"Missed {s['target_rps']:,.0f} req/s: at {app_ms:.2f} ms of app CPU per request, "
                    f"{cores:.0f} cores cap the app at about {app_cap:,.0f} req/s even with a free "
                    f"database and load generator. "
                )
            if s["target_p99_ms"] is not None and api["p99_ms"] >= s["target_p99_ms"]:
                mean = conns / api["rps"] * 1000
                text += (
                    f"Missed p99 < {s['target_p99_ms']:.0f} ms: with {conns} connections always busy, "
                    f"a request spends on average {conns} / {api['rps']:,.0f} req/s ≈ {mean:.0f} ms "
                    f"in the server (Little's law), so the tail follows throughput. "
                )
        else:
            text += "Target met. "
        out.append(text.strip())
    return out


def _checks(results: Results) -> list[str]:
    out = []
    totals = results["checks"].get("totals")
    if totals:
        out.append(
            f"Before the runs the API reported `pagination.total` = {totals['api_total']:,} and, "
            f"for `?tag=vip`, {totals['api_vip_total']:,}: equal to COUNT(*) on the tables."
        )
    mism = results["checks"].get("counter_mismatches")
    if mism is not None:
        out.append(
            "After all upsert runs every `contact_counts` total still equals COUNT(*) of what it "
            "counts."
            if not mism
            else "Counter MISMATCHES after the upsert runs: " + "; ".join(mism)
        )
    errors = {name: api_errors(s) for name, s in results["scenarios"].items() if s.get("api")}
    if any(errors.values()):
        out.append(f"Non-2xx or socket errors in API runs: {errors}.")
    else:
        out.append("No non-2xx responses, socket errors or timeouts in any API run.")
    up = results["scenarios"].get("upsert", {}).get("api")
    if up and up.get("counters"):
        out.append(
            f"Upsert run: {up['counters'].get('created', 0):,} created (201), "
            f"{up['counters'].get('updated', 0):,} updated (200)."
        )
    spreads = [
        f"{name} "
        + " / ".join(_n(r["rps"]) for r in s["api_runs"])
        + " req/s"
        + " (p99 "
        + " / ".join(_ms(r["p99_ms"]) for r in s["api_runs"])
        + " ms)"
        for name, s in results["scenarios"].items()
        if len(s.get("api_runs") or []) > 1
    ]
    if spreads:
        out.append(
            f"API figures are the median of {len(next(iter(results['scenarios'].values()))['api_runs'])} "
            "runs by req/s (the speed of this virtual machine drifts between runs minutes apart, "
            "with nothing else running); every run: " + "; ".join(spreads) + "."
        )
    repeated = [
        f"{name} ({kind}: {s[kind + '_attempts']} runs)"
        for name, s in results["scenarios"].items()
        for kind in ("api", "pgbench", "asyncpg")
        if s.get(kind + "_attempts", 1) > 1
    ]
    if repeated:
        out.append(
            "Runs repeated because other processes were busy during them (the least disturbed "
            "run is reported): " + ", ".join(repeated) + "."
        )
    noisy = [
        name
        for name, s in results["scenarios"].items()
        if s.get("api") and s["api"]["cpu"].get("other", 0) / s["api"]["duration_s"] > 0.15
    ]
    if noisy:
        out.append(
            "Other processes on the machine used noticeable CPU during: "
            + ", ".join(noisy)
            + " (see the background column): those figures are somewhat low."
        )
    return out


def yardstick_lines(results: Results) -> list[str]:
    y = results.get("yardstick")
    listed = results["scenarios"].get("list", {}).get("api")
    if not y or not listed:
        return []
    m = y["median"]
    runs = " / ".join(_n(r) for r in y["runs"])
    return [
        "**Yardstick** (`bench/yardstick.py`): FastAPI + raw asyncpg + orjson serving the same "
        "page with aisoule's own statement, with no authentication, rate limiting, session or "
        "middleware, the stack the issue quotes at about 2,000 requests/s per core on this "
        f"machine kind; same workers, same wrk, right after aisoule's runs: {_n(m['rps'])} req/s "
        f"(p50 {_ms(m['p50_ms'])} / p99 {_ms(m['p99_ms'])} ms; median of {runs}). aisoule's "
        f"list, with everything it does besides, reached **{listed['rps'] / m['rps']:.0%}** of "
        "it in the same run.",
        "",
    ]


def markdown(results: Results) -> str:
    m, cfg, pg, v = (
        results["machine"],
        results["config"],
        results["postgresql"],
        results["versions"],
    )
    parts = [
        "# Benchmarks",
        "",
        f"Produced by `{results['command']}` on {results['date']} "
        f"({results['elapsed_s']} s including setup). The script writes this file; do not edit the "
        "figures by hand. Raw numbers of the last run: `bench/results/latest.json` (not committed).",
        "",
        "## Setup",
        "",
        f"- Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory']} RAM, {m['os']}; "
        f"Python {m['python']}; PostgreSQL {pg['version']} (shared_buffers {pg['shared_buffers']}, "
        f"synchronous_commit {pg['synchronous_commit']}, max_connections {pg['max_connections']}); "
        f"{m['wrk']}.",
        f"- Everything on that one machine: PostgreSQL, the server "
        f"(`aisoule serve --workers {cfg['workers']}`: uvicorn {v['uvicorn']}, FastAPI {v['fastapi']}, "
        f"SQLAlchemy {v['sqlalchemy']}, asyncpg {v['asyncpg']}, default settings: a pool of 20 "
        "connections per worker, no overflow) and the load generators.",
        f"- Data: one workspace with {cfg['contacts']:,} contacts in database `{cfg['database']}` "
        "(seeded with COPY by `bench/seed.py`: 10% tagged `vip`, a region tag on each, a third "
        "`newsletter`, four stages; `contact_tags` and `contact_counts` filled to match; VACUUM "
        "ANALYZE). Created through the real code paths: `aisoule user create`, `aisoule apikey "
        "create`, Alembic migrations.",
        f"- API load: `wrk -t{cfg['threads']} -c{cfg['connections']} -d{cfg['duration_s']}s "
        f"--latency` after a {cfg['warmup_s']} s warm-up, {cfg.get('repeat', 1)} runs per scenario "
        "(the median is reported), the key as `Authorization: Bearer`. "
        'Upserts: `bench/wrk/upsert.lua`, body `{"phone", "first_name": "Bench", "tags": '
        '["bench"], "custom_fields": {"k": "v"}}`; half the phones are seeded contacts '
        "(updates), half fresh numbers (inserts).",
        f"- Database alone: `pgbench -M prepared -c {cfg['connections']} -j {cfg['threads']} "
        f"-T {cfg['duration_s']}` with `bench/pgbench/*.sql`: per transaction, the statements the app "
        "sends for one request (BEGIN, the API key lookup, the page, the counter, COMMIT; for upserts "
        "the SELECT ... FOR UPDATE and the writes), p50/p99 from pgbench's per-transaction log; "
        "the app itself skips the key lookup for a key its process remembers (docs/security.md), "
        "so the database-alone side does one statement more than the app sends. "
        "A C client, so the figure is what PostgreSQL itself can do with that SQL here.",
        f"- Code measured: commit `{results['code']['commit']}`"
        + (
            f" with {results['code']['aisoule_changes']} uncommitted change(s) under `aisoule/`."
            if results["code"]["aisoule_changes"] != "0"
            else "."
        ),
        "- CPU per request is read from /proc before and after each run: the server's process "
        "tree, the PostgreSQL processes of this database, wrk; *background* is everything else.",
        "",
        "## Results",
        "",
        _md_table(HEADERS, _rows(results), right={1, 3}),
        "",
        "*API/DB ratio*: API req/s as a fraction of the database-alone tx/s for the same SQL "
        "(1.00x would mean the API adds nothing), and in brackets API p99 over database p99.",
        "",
        *yardstick_lines(results),
        "## Where the time goes",
        "",
        "CPU milliseconds per request (API runs) and per transaction (pgbench runs):",
        "",
        _md_table(
            [
                "Scenario",
                "app workers",
                "split between workers",
                "PostgreSQL",
                "wrk",
                "cores used (these three)",
                "background (cores)",
                "PostgreSQL, pgbench run",
                "pgbench client",
            ],
            _cpu_rows(results),
            right={1, 3, 4, 5, 6, 7, 8},
        ),
        "",
        f"The same transactions from one Python process (asyncpg, {cfg['connections']} "
        "connections, `bench/dbalone.py`): a lean Python client, for comparison with the app's "
        "stack.",
        "",
        _md_table(
            ["Scenario", "tx/s", "p50 / p99", "client CPU ms/tx", "PostgreSQL CPU ms/tx"],
            _asyncpg_rows(results),
            right={1, 3, 4},
        ),
        "",
        "## Analysis",
        "",
        *[f"- {line}" for line in analysis(results)],
        "",
        "## Checks",
        "",
        *[f"- {line}" for line in _checks(results)],
        "",
        "## Reproduce",
        "",
        "```sh",
        "make bench                                   # 1,000,000 contacts, 20 s per run, this file",
        ".venv/bin/python -m bench --skip-seed        # reuse the seeded database",
        ".venv/bin/python -m bench --contacts 20000 --duration 5   # quick check, file untouched",
        ".venv/bin/python -m bench --help             # all options",
        ".venv/bin/python -m bench.dashboard --write  # the web app's contacts page (own section)",
        "```",
        "",
        "Needs PostgreSQL (`AISOULE_BENCH_DATABASE_URL`, default "
        "`postgresql://postgres@127.0.0.1:5432/aisoule_bench`; that database is dropped and "
        "recreated), `wrk` (installed with apt-get when missing and run as root) and `pgbench`.",
        "",
    ]
    return "\n".join(parts)
