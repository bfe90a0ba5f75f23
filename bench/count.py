"""Deterministic cost of one API request at a checkout: instructions, Python calls, SQL statements.

Timings on a shared virtual machine drift by more than the 5% a before/after bar asks about; the
number of instructions a request executes does not (it repeats to within a fraction of a percent).
This drives a checkout's app in-process, with a raw ASGI call (no server, no HTTP parsing, no
client library: only the app's own code and what it calls), against a seeded PostgreSQL database,
and counts what N requests cost after a warm-up:

- ``--mode callgrind``: ``valgrind --tool=callgrind`` instructions (Ir) of the N requests only
  (a tiny C helper compiled on first use toggles collection around them; startup and warm-up are
  not instrumented). Prints Ir per request and leaves ``callgrind.out.*`` in ``--out`` for
  ``callgrind_annotate``.
- ``--mode profile``: cProfile over the N requests; prints calls per request and writes a pstats
  file (``--diff`` compares two of them: the functions whose call counts differ).
- ``--mode server``: the same instructions, of the whole server process: ``aisoule serve
  --workers 1`` (uvicorn, uvloop, httptools: what the wrk benchmarks run) under callgrind, driven
  over ``--connections`` keep-alive connections by a client in this process; instrumentation is
  switched on after the warm-up and the counters zeroed and dumped around the N requests with
  ``callgrind_control``. This includes what the in-process mode leaves out (the HTTP server, the
  event loop, timers), at the price of a few tenths of a percent of scheduling noise.
- ``--mode statements``: SQL statements per request, as the driver sees them (every asyncpg
  ``Connection``/``PreparedStatement`` execution, BEGIN/COMMIT included) and as SQLAlchemy sees
  them (``before_cursor_execute``).

Each checkout runs with its own virtualenv (``DIR/.venv/bin/python``), so its own code; the
database and the API key are shared (migrated by the code running this script: the AFTER side)::

    python -m bench.count --seed                                    # once: database + key
    python -m bench.count --checkout /work/wt/i9before --mode callgrind
    python -m bench.count --checkout . --mode callgrind
    python -m bench.count --checkout /work/wt/i9before --mode profile --out /tmp/before
    python -m bench.count --checkout . --mode profile --out /tmp/after
    python -m bench.count --diff /tmp/before/profile.pstats /tmp/after/profile.pstats

Options: ``--path`` (default ``/v1/contacts?limit=20``), ``--requests`` (200), ``--warmup``
(300), ``--database-url`` (``postgresql://postgres@127.0.0.1:5432/aisoule_count``),
``--contacts`` (5,000, with ``--seed``). The key is kept in ``bench/results/count-key.txt``.

A request with a body: ``--method POST --body JSON`` (the same bytes every time, as
``application/json``), ``--idempotency-key fresh`` for a new ``Idempotency-Key`` on each request
(made before the window), ``--expect`` the status every request must answer (200 for a GET, 202
otherwise) and ``--expect-rows TABLE``: each answer names (by its first uuid) a row now in TABLE.
Such a request runs the app with ``AISOULE_WORKER_MODE=external`` and a Redis stream at
``--broker`` (``redis://127.0.0.1:6379/11``; one per concurrent run) that no worker reads, so
the request enqueues its task (one XADD, as a server in front of ``aisoule worker`` does) and the
task never runs inside the window; the stream is emptied before the run and its length printed
after (one task per request). ``--seed`` also gives the workspace its sandbox account (created
by ``aisoule user create`` with sandboxes on; no emulator need listen: the request path never
calls it) and opens the 24-hour window of contacts 1..100 (``+919800000000`` to ``..99``), as
bench/send.py's ``_open_windows`` does, so a free-form message to them is accepted for the next
24 hours (re-seed after that). Issue 9's send, at each checkout::

    python -m bench.count --checkout DIR --mode callgrind --method POST \\
        --path /api/messages/send --expect-rows messages \\
        --body '{"to": "+919800000001", "text": {"body": "bench"}}'
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/aisoule_count"
HERE = Path(__file__).resolve().parent
KEY_FILE = HERE / "results" / "count-key.txt"
DEFAULT_BROKER = "redis://127.0.0.1:6379/11"
TASK_STREAM = "aisoule:tasks"  # aisoule.worker.broker's queue_name
WINDOWS = 100  # seeded contacts 1..100 (+919800000000..99) wrote in: their window is open
WINDOW_HOURS = 24

# Collection on/off around the measured requests (no-ops outside valgrind).
_MARKER_C = r"""
#include <valgrind/callgrind.h>
void cg_start(void) {
    CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; CALLGRIND_TOGGLE_COLLECT;
}
void cg_stop(void) {
    CALLGRIND_TOGGLE_COLLECT; CALLGRIND_DUMP_STATS_AT("requests"); CALLGRIND_STOP_INSTRUMENTATION;
}
"""


def _marker_library() -> Path:
    cache = Path(tempfile.gettempdir()) / "aisoule-bench-count"
    cache.mkdir(exist_ok=True)
    lib = cache / "cgmark.so"
    if not lib.exists():
        src = cache / "cgmark.c"
        src.write_text(_MARKER_C)
        subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


# --- the child: runs inside the checkout's interpreter ----------------------------------------


async def _call(
    app: Any,
    path: str,
    key: str,
    method: str = "GET",
    body: bytes = b"",
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> tuple[int, bytes]:
    raw_path, _, query = path.partition("?")
    headers = [
        (b"host", b"127.0.0.1:8100"),
        (b"authorization", b"Bearer " + key.encode()),
        (b"accept", b"*/*"),
    ]
    if body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": headers + list(extra),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8100),
        "state": {},
    }
    sent = False
    status = 0
    answer: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # never: the whole body came in the first message
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            answer.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(answer)


class _StatementCounter:
    """Counts executions at the driver (asyncpg) and at SQLAlchemy's cursor."""

    def __init__(self) -> None:
        self.driver: dict[str, int] = {}
        self.sqlalchemy = 0
        self.on = False

    def install(self, engine: Any) -> None:
        import asyncpg.connection
        import asyncpg.prepared_stmt
        from sqlalchemy import event

        def wrap(cls: type, name: str) -> None:
            original = getattr(cls, name)

            async def counted(this: Any, query: Any = None, *args: Any, **kw: Any) -> Any:
                if self.on:
                    label = query if isinstance(query, str) else getattr(this, "_query", "?")
                    label = f"{cls.__name__}.{name}: {' '.join(str(label).split())[:90]}"
                    self.driver[label] = self.driver.get(label, 0) + 1
                if query is None:
                    return await original(this, *args, **kw)
                return await original(this, query, *args, **kw)

            setattr(cls, name, counted)

        for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
            wrap(asyncpg.connection.Connection, name)
        for name in ("executemany", "fetch", "fetchrow", "fetchval"):
            wrap(asyncpg.prepared_stmt.PreparedStatement, name)

        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _before(*_: Any) -> None:
            if self.on:
                self.sqlalchemy += 1


def _requests(args: argparse.Namespace, count: int) -> list[tuple[bytes, tuple[Any, ...]]]:
    """Each request's body and extra headers, made before the window (a fresh Idempotency-Key
    each with ``--idempotency-key fresh``)."""
    import uuid

    body = (args.body or "").encode()
    if args.idempotency_key != "fresh":
        return [(body, ())] * count
    return [
        (body, ((b"idempotency-key", f"count-{uuid.uuid4().hex}".encode()),)) for _ in range(count)
    ]


_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


async def _rows(engine: Any, table: str, answers: list[bytes]) -> int:
    """How many of the rows the answers name (each by the first uuid in it) ``table`` holds."""
    from sqlalchemy import bindparam, text

    if not re.fullmatch(r"[a-z_]+", table):
        raise SystemExit(f"--expect-rows: not a table name: {table!r}")
    ids = [m.group().decode() for a in answers if (m := _UUID.search(a))]
    async with engine.connect() as conn:
        query = text(f"SELECT count(*) FROM {table} WHERE CAST(id AS TEXT) IN :ids")
        query = query.bindparams(bindparam("ids", expanding=True))
        return int((await conn.execute(query, {"ids": ids})).scalar_one()) if ids else 0


async def _child(args: argparse.Namespace) -> None:
    import ctypes
    import gc

    from aisoule.app import create_app

    marker = ctypes.CDLL(args.marker) if args.marker else None
    key = KEY_FILE.read_text().strip() if not args.key else args.key
    expect = args.expect or (200 if args.method == "GET" else 202)
    app = create_app()
    counter = _StatementCounter()
    warmup = _requests(args, args.warmup)
    measured = _requests(args, args.requests)
    answers: list[tuple[int, bytes]] = []
    async with app.router.lifespan_context(app):
        if args.mode == "statements":
            counter.install(app.state.engine)
        for body, extra in warmup:
            status, answer = await _call(app, args.path, key, args.method, body, extra)
            if status != expect:
                raise SystemExit(f"{args.method} {args.path} answered {status}: {answer[:300]!r}")
            answers.append((status, answer))
        gc.collect()
        n = args.requests
        if args.mode == "callgrind":
            assert marker is not None
            marker.cg_start()
            for body, extra in measured:
                answers.append(await _call(app, args.path, key, args.method, body, extra))
            marker.cg_stop()
        elif args.mode == "profile":
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.enable()
            for body, extra in measured:
                answers.append(await _call(app, args.path, key, args.method, body, extra))
            profile.disable()
            out = Path(args.out) / "profile.pstats"
            profile.dump_stats(out)
            stats = pstats.Stats(str(out))
            calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
            print(f"python calls per request: {calls / n:,.1f}   ({out})")
        else:
            counter.on = True
            for body, extra in measured:
                answers.append(await _call(app, args.path, key, args.method, body, extra))
            counter.on = False
            total = sum(counter.driver.values())
            print(f"driver executions per request: {total / n:g}")
            for label, count in sorted(counter.driver.items(), key=lambda kv: -kv[1]):
                print(f"  {count / n:g}  {label}")
            print(f"SQLAlchemy cursor executions per request: {counter.sqlalchemy / n:g}")
        wrong = [s for s, _ in answers if s != expect]
        if wrong:
            raise SystemExit(f"{len(wrong)} of the {n} measured requests did not answer {expect}")
        if args.expect_rows:
            found = await _rows(app.state.engine, args.expect_rows, [a for _, a in answers])
            print(f"{args.expect_rows}: {found} rows named by the {len(answers)} answers")
            if found != len(answers):
                raise SystemExit(f"expected each answer to name a new {args.expect_rows} row")


# --- the parent: seeds, or starts the child at a checkout ----------------------------------------


def _env(database_url: str, hash_seed: int = 0, broker: str | None = None) -> dict[str, str]:
    from bench.env import BenchConfig

    cfg = BenchConfig(database_url, 0, 0, 0, 0, 0, 0)
    env = cfg.app_env()
    if broker:
        # Tasks go to a Redis stream that no worker reads: the request enqueues (one XADD, as a
        # server in front of `aisoule worker` does) and nothing runs the task in the window.
        env.update(AISOULE_WORKER_MODE="external", AISOULE_TASK_BROKER_URL=broker)
    env.update(
        # str hashes decide dict and method-cache collisions: fixed, so that runs repeat (and
        # varied with --hash-seed, to tell a real change from a layout's luck).
        PYTHONHASHSEED=str(hash_seed),
        # Nothing on a timer inside the measured window: the reconciler and the usage flush.
        AISOULE_RECONCILE_SECONDS="3600",
        AISOULE_USAGE_FLUSH_SECONDS="3600",
        # The key's last_used_at write (a task of its own, once a minute per key) lands in a
        # window by the wall clock: once, in the warm-up, at most.
        AISOULE_API_KEY_LAST_USED_RESOLUTION="86400",
    )
    return env


def _seed(args: argparse.Namespace) -> None:
    from bench import prepare, seed
    from bench.env import BenchConfig

    cfg = BenchConfig(args.database_url, args.contacts, 0, 0, 0, 0, 0)
    asyncio.run(prepare.recreate_database(cfg))
    prepare.migrate(cfg)
    # The workspace gets its sandbox account (what a send goes out through), as in bench/send.py;
    # no emulator needs to listen: registering the number is best effort, after the commit, and
    # the request path never talks to it (the worker does).
    os.environ.update(AISOULE_SANDBOX_ACCOUNTS="true", AISOULE_EMULATOR="http://127.0.0.1:9")
    prepare.create_user(cfg)
    for name in ("AISOULE_SANDBOX_ACCOUNTS", "AISOULE_EMULATOR"):
        del os.environ[name]
    cfg.api_key = prepare.create_api_key(cfg)
    asyncio.run(prepare.load_identity(cfg))
    asyncio.run(seed.seed(cfg.asyncpg_dsn, cfg.workspace_id, args.contacts))
    asyncio.run(_open_windows(cfg.asyncpg_dsn, min(WINDOWS, args.contacts)))
    KEY_FILE.parent.mkdir(exist_ok=True)
    KEY_FILE.write_text(cfg.api_key + "\n")
    print(
        f"seeded {args.contacts:,} contacts into {cfg.database_name}, the first "
        f"{min(WINDOWS, args.contacts)} with a 24-hour window open on the sandbox account "
        f"(for the next {WINDOW_HOURS} h); key in {KEY_FILE}"
    )


async def _open_windows(dsn: str, count: int) -> None:
    """The customer wrote in just now (as bench/send.py's ``_open_windows``): a free-form message
    to the first ``count`` seeded contacts is accepted for the next 24 hours."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        account = await conn.fetchrow("SELECT id, workspace_id FROM whatsapp_accounts")
        if account is None:
            raise SystemExit("no sandbox account was created; see `aisoule user create` above")
        await conn.execute(
            "INSERT INTO conversations (workspace_id, account_id, contact_id, last_inbound_at,"
            " last_message_at) SELECT $1, $2, id, now(), now() FROM contacts"
            " WHERE workspace_id = $1 AND number <= $3 ON CONFLICT DO NOTHING",
            account["workspace_id"],
            account["id"],
            count,
        )
    finally:
        await conn.close()


def _run(args: argparse.Namespace) -> None:
    checkout = Path(args.checkout).resolve()
    python = checkout / ".venv" / "bin" / "python"
    out = Path(args.out or tempfile.mkdtemp(prefix="count-")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    child = [
        str(python),
        str(Path(__file__).resolve()),
        "--child",
        "--mode",
        args.mode,
        "--path",
        args.path,
        "--method",
        args.method,
        "--requests",
        str(args.requests),
        "--warmup",
        str(args.warmup),
        "--out",
        str(out),
        "--key",
        KEY_FILE.read_text().strip(),
        "--idempotency-key",
        args.idempotency_key,
        *(["--body", args.body] if args.body else []),
        *(["--expect", str(args.expect)] if args.expect else []),
        *(["--expect-rows", args.expect_rows] if args.expect_rows else []),
    ]
    broker = _broker(args)
    if broker:
        asyncio.run(_stream_length(broker, reset=True))
    if args.mode == "server":
        _server(args, checkout, out, KEY_FILE.read_text().strip())
    elif args.mode == "callgrind":
        child += ["--marker", str(_marker_library())]
        child = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--collect-atstart=no",
            *(["--cache-sim=yes", "--branch-sim=yes"] if args.cache_sim else []),
            f"--callgrind-out-file={out}/callgrind.out.%p",
            *child,
        ]
    if args.mode != "server":
        proc = subprocess.run(
            child,
            cwd=checkout,
            env=_env(args.database_url, args.hash_seed, broker),
            capture_output=True,
            text=True,
        )
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(proc.returncode)
    if broker:
        queued = asyncio.run(_stream_length(broker))
        print(f"tasks left in the broker's stream (no worker reads it): {queued}")
    if args.mode in ("callgrind", "server"):
        dumps = sorted(out.glob("callgrind.out.*.1"))
        if not dumps:
            raise SystemExit(f"no callgrind dump in {out}")
        text = dumps[-1].read_text(errors="replace")
        events = re.search(r"^events:\s*(.*)$", text, re.M)
        match = re.search(r"^(?:summary|totals):\s*([\d ]+)$", text, re.M)
        assert events is not None and match is not None
        totals = dict(zip(events.group(1).split(), map(int, match.group(1).split()), strict=False))
        ir = totals["Ir"]
        commit = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(
            f"{checkout} ({commit}): {ir:,} Ir for {args.requests} requests = "
            f"{ir / args.requests:,.0f} Ir per request   ({dumps[-1]})"
        )
        if args.cache_sim:
            per = {k: v / args.requests for k, v in totals.items()}
            print(
                "  per request: " + ", ".join(f"{k} {v:,.0f}" for k, v in per.items() if k != "Ir")
            )


def _broker(args: argparse.Namespace) -> str | None:
    """The task broker a request that is not a GET runs with (None: the checkout's default)."""
    return args.broker if args.method != "GET" and args.broker != "inprocess" else None


async def _stream_length(url: str, *, reset: bool = False) -> int:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        if reset:
            await client.delete(TASK_STREAM)
        return int(await client.xlen(TASK_STREAM))
    finally:
        await client.aclose()


def _http_request(args: argparse.Namespace, port: int, key: str, count: int) -> list[bytes]:
    """The raw HTTP/1.1 requests the server mode sends (each its own Idempotency-Key if fresh)."""
    requests = []
    for body, extra in _requests(args, count):
        head = (
            f"{args.method} {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {key}\r\nAccept: */*\r\n"
        )
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k.decode()}: {v.decode()}\r\n" for k, v in extra)
        requests.append(head.encode() + b"\r\n" + body)
    return requests


async def _load(
    port: int, path: str, requests: list[bytes], connections: int, expect: int = 200
) -> None:
    """``requests`` over ``connections`` keep-alive connections, one at a time each."""
    remaining = list(reversed(requests))
    status_line = f"HTTP/1.1 {expect}".encode()

    async def one_connection() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining:
                writer.write(remaining.pop())
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(status_line):
                    raise SystemExit(f"{path} answered {head[:200]!r}")
                match = re.search(rb"content-length: *(\d+)", head, re.I)
                assert match is not None
                await reader.readexactly(int(match.group(1)))
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))


async def _backends(database_url: str) -> set[int]:
    """The server processes of this database's connections (ours left out)."""
    import asyncpg

    dsn = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", database_url)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return {r["pid"] for r in rows}
    finally:
        await conn.close()


def _server(args: argparse.Namespace, checkout: Path, out: Path, key: str) -> Path:
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        *(["--cache-sim=yes", "--branch-sim=yes"] if args.cache_sim else []),
        f"--callgrind-out-file={out}/callgrind.out.%p",
        str(checkout / ".venv" / "bin" / "python"),
        "-m",
        "aisoule",
        "serve",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = (out / "server.log").open("wb")
    proc = subprocess.Popen(
        cmd,
        cwd=checkout,
        env=_env(args.database_url, args.hash_seed, _broker(args)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 600
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start; see {out / 'server.log'}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
                break
            except OSError:
                time.sleep(1)
        expect = args.expect or (200 if args.method == "GET" else 202)

        def load(count: int) -> None:
            requests = _http_request(args, port, key, count)
            asyncio.run(_load(port, args.path, requests, args.connections, expect))

        load(args.warmup)
        control = ["callgrind_control"]
        subprocess.run([*control, "-i", "on", str(proc.pid)], check=True, capture_output=True)
        load(args.warmup)
        started = asyncio.run(_backends(args.database_url))
        subprocess.run([*control, "-z", str(proc.pid)], check=True, capture_output=True)
        load(args.requests)
        subprocess.run(
            [*control, "--dump=requests", str(proc.pid)], check=True, capture_output=True
        )
        opened = asyncio.run(_backends(args.database_url)) - started
        # A database connection opened inside the window (the pool growing to the concurrency it
        # meets) costs as much as a few dozen requests: such a run is not comparable.
        print(f"database connections opened in the window: {len(opened)}")
    finally:
        proc.send_signal(2)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return out


def _diff(before: str, after: str, top: int) -> None:
    import pstats

    def calls(path: str) -> dict[str, tuple[int, float]]:
        stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
        result: dict[str, tuple[int, float]] = {}
        for (file, line, name), (_, ncalls, tt, _, _) in stats.items():
            # By file and function, not line: the two commits' lines differ.
            file = re.sub(r"^.*/(site-packages|aisoule)/", r"\1/", file)
            name = re.sub(r" at 0x[0-9a-f]+", "", name)
            label = f"{file}({name})" if line else name
            old = result.get(label, (0, 0.0))
            result[label] = (old[0] + ncalls, old[1] + tt)
        return result

    b, a = calls(before), calls(after)
    print(
        f"python calls: before {sum(v[0] for v in b.values()):,}, after "
        f"{sum(v[0] for v in a.values()):,}"
    )
    rows = [(a.get(k, (0, 0))[0] - b.get(k, (0, 0))[0], k) for k in set(a) | set(b)]
    rows = [r for r in rows if r[0]]
    rows.sort(key=lambda r: -abs(r[0]))
    for delta, label in rows[:top]:
        print(f"{delta:+8d}  before {b.get(label, (0, 0))[0]:7d}  {label}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.count", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--checkout", help="the checkout to measure (its .venv runs it)")
    parser.add_argument(
        "--mode", choices=("callgrind", "server", "profile", "statements"), default="callgrind"
    )
    parser.add_argument("--path", default="/v1/contacts?limit=20")
    parser.add_argument("--method", default="GET", choices=("GET", "POST", "PUT", "PATCH"))
    parser.add_argument("--body", help="the JSON body of every request (sent as application/json)")
    parser.add_argument(
        "--idempotency-key",
        choices=("none", "fresh"),
        default="none",
        help="none (default), or a new Idempotency-Key header on every request",
    )
    parser.add_argument("--expect", type=int, help="the status every request must answer")
    parser.add_argument(
        "--expect-rows", metavar="TABLE", help="check that each request wrote one row to TABLE"
    )
    parser.add_argument(
        "--broker",
        default=DEFAULT_BROKER,
        help=f"not a GET: the app enqueues to this Redis, read by no worker ({DEFAULT_BROKER}); "
        "'inprocess' keeps the checkout's default (the task runs in the process)",
    )
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--connections", type=int, default=8, help="server mode (8)")
    parser.add_argument(
        "--cache-sim", action="store_true", help="callgrind's cache and branch simulation too"
    )
    parser.add_argument("--hash-seed", type=int, default=0, help="PYTHONHASHSEED (0)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--seed", action="store_true", help="(re)create and seed the database")
    parser.add_argument("--out", help="where dumps go (default: a new temporary directory)")
    parser.add_argument("--diff", nargs=2, metavar=("BEFORE", "AFTER"), help="two pstats files")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--marker", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_child(args))
    elif args.diff:
        _diff(args.diff[0], args.diff[1], args.top)
    elif args.seed:
        _seed(args)
    elif args.checkout:
        _run(args)
    else:
        parser.error("give --seed, --checkout DIR or --diff BEFORE AFTER")


if __name__ == "__main__":
    main()
