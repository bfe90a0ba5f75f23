"""The emulator as a real subprocess (`aisoule emulator`), and a webhook receiver for its posts."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from aisoule.whatsapp.cloud.client import CloudAPIClient
from tests.servers import AISOULE, ROOT, free_port

TOKEN = "emulator-token"
PHONE_ID = "106540352242922"
WABA_ID = "102290129340398"
APP_SECRET = "test-app-secret"


@dataclass
class Emulator:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    baseline: dict[str, Any] = field(default_factory=dict)

    def control(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def configure(self, **settings: Any) -> dict[str, Any]:
        with self.control() as c:
            r = c.post("/_emulator/config", json=settings)
            assert r.status_code == 200, r.text
            return dict(r.json())

    def inbound(self, **body: Any) -> dict[str, Any]:
        with self.control() as c:
            r = c.post("/_emulator/inbound", json=body)
            assert r.status_code == 200, r.text
            return dict(r.json())

    def sent(self, to: str | None = None) -> list[dict[str, Any]]:
        with self.control() as c:
            r = c.get("/_emulator/messages", params={"to": to} if to else None)
            return list(r.json()["data"])

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


@dataclass
class Hook:
    raw: bytes
    headers: dict[str, str]

    @property
    def json(self) -> dict[str, Any]:
        return dict(orjson.loads(self.raw))


class Receiver:
    """A plain http.server that keeps every POST's raw bytes and headers."""

    def __init__(self) -> None:
        self.hooks: list[Hook] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.hooks.append(Hook(raw, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/whatsapp"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, predicate: Any, timeout: float = 5.0) -> list[Hook]:
        """Wait until ``predicate(hooks)`` is true; answer the hooks."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.hooks):
                return list(self.hooks)
            time.sleep(0.02)
        raise AssertionError(f"webhooks did not arrive; got {[h.json for h in self.hooks]}")

    def statuses(self) -> list[dict[str, Any]]:
        out = []
        for h in self.hooks:
            value = h.json["entry"][0]["changes"][0]["value"]
            out.extend(value.get("statuses", []))
        return out


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


@pytest.fixture(scope="session")
def emulator_server(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[Emulator]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("emulator") / "emulator.log"
    env = {
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
        "AISOULE_LOG_LEVEL": "WARNING",
        "AISOULE_EMULATOR_TEMPLATE_APPROVAL_SECONDS": "0.3",
        "AISOULE_EMULATOR_WEBHOOK_LATENCY_MS": "20",
    }
    proc = subprocess.Popen(
        [
            *AISOULE,
            "emulator",
            "--port",
            str(port),
            "--webhook-url",
            receiver.url,
            "--app-secret",
            APP_SECRET,
        ],
        env=env,
        cwd=log_path.parent,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    emu = Emulator(url=f"http://127.0.0.1:{port}", proc=proc, log_path=log_path)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited early:\n{emu.logs()}")
        try:
            with emu.control() as c:
                if c.get("/_emulator/health").status_code == 200:
                    emu.baseline = c.get("/_emulator/config").json()
                    break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"emulator did not start:\n{emu.logs()}")
        time.sleep(0.1)
    yield emu
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def emulator(emulator_server: Emulator, receiver: Receiver) -> Emulator:
    """The session's emulator, reset: empty world, startup settings, no webhooks received."""
    with emulator_server.control() as c:
        # The reset answers once no webhook of the previous test can still arrive.
        c.post("/_emulator/reset").raise_for_status()
        c.post("/_emulator/config", json=emulator_server.baseline).raise_for_status()
    receiver.hooks.clear()
    receiver.status = 200
    return emulator_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[CloudAPIClient]:
    c = CloudAPIClient(access_token=TOKEN, base_url=emulator.url, read_timeout=5)
    yield c
    await c.close()
