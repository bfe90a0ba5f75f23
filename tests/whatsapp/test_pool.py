"""The provider seam: an account's provider kind picks Meta or the emulator, and only the
emulator's provider makes the control call that registers a number. Against the real emulator
subprocess and a Graph API stand-in that counts every request it gets."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker

from aisoule.accounts import service as accounts
from aisoule.config import Settings
from aisoule.exceptions import ValidationFailed
from aisoule.kit.crypto import seal
from aisoule.kit.signing import verify_sha256
from aisoule.models import WhatsAppAccount
from aisoule.runtime import Runtime, lookup_key, sealing_key
from aisoule.whatsapp.pool import ProviderPool
from aisoule.whatsapp.provider import PhoneNumber
from tests.whatsapp.conftest import TOKEN, Emulator, Receiver

pytestmark = pytest.mark.anyio

CUSTOMER = "15551234567"


class CountingGraph:
    """Answers every request with a phone number node, and counts them."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                graph.paths.append(f"{self.command} {self.path}")
                body = orjson.dumps({"id": "1", "display_phone_number": "15550001111"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def graph() -> Iterator[CountingGraph]:
    g = CountingGraph()
    yield g
    g.server.shutdown()


def make_runtime(tmp_path: Path, graph: CountingGraph, emulator: str) -> Runtime:
    settings = Settings(
        data_dir=tmp_path, emulator=emulator, whatsapp_graph_url=graph.url, redis_url=None
    )
    return Runtime(
        settings=settings,
        sessionmaker=async_sessionmaker(),  # unused: the seam needs no database
        providers=ProviderPool(settings),
        sealing_key=sealing_key("seam-test-secret"),
        lookup_key=lookup_key("seam-test-secret"),
    )


def account(rt: Runtime, provider: str, *, app_secret: str | None) -> WhatsAppAccount:
    digits = str(uuid.uuid4().int)
    return WhatsAppAccount(
        id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        provider=provider,
        phone_number_id="1" + digits[:14],
        waba_id="2" + digits[14:28],
        phone_number="+1555" + digits[-7:],
        display_name="Seam test",
        access_token_sealed=seal(rt.sealing_key, TOKEN.encode()),
        app_secret_sealed=seal(rt.sealing_key, app_secret.encode()) if app_secret else None,
    )


def emulator_numbers(emulator: Emulator) -> set[str]:
    r = httpx.get(f"{emulator.url}/_emulator/numbers", timeout=10)
    return {n["phone_number_id"] for n in r.json()["data"]}


async def test_a_sandbox_account_is_registered_at_the_emulator_with_its_own_secret(
    tmp_path: Path, graph: CountingGraph, emulator: Emulator, receiver: Receiver
) -> None:
    rt = make_runtime(tmp_path, graph, emulator.url)
    row = account(rt, accounts.EMULATOR, app_secret="the-numbers-own-secret")
    assert row.phone_number_id not in emulator_numbers(emulator)
    try:
        sender = await accounts.sender(rt, row)
        assert row.phone_number_id in emulator_numbers(emulator)
        # The emulator signs this number's webhooks with the account's secret, not its shared one.
        emulator.inbound(**{"from": CUSTOMER, "text": "hi", "phone_number_id": row.phone_number_id})
        hook = receiver.wait(lambda hooks: len(hooks) == 1)[0]
        assert verify_sha256(
            hook.raw, hook.headers["x-hub-signature-256"], "the-numbers-own-secret"
        )
        # The provider the seam answered sends through the emulator, as that number.
        sent = await sender.provider.send_message(
            row.phone_number_id,
            {"to": CUSTOMER, "type": "text", "text": {"body": "hello"}},
            access_token=sender.access_token,
        )
        assert sent.wa_id == CUSTOMER
        assert [m["type"] for m in emulator.sent(CUSTOMER)] == ["text"]
        assert graph.paths == []  # Meta's Graph API heard nothing of it
    finally:
        await rt.providers.close()


async def test_a_cloud_api_account_makes_no_control_call(
    tmp_path: Path, graph: CountingGraph, emulator: Emulator
) -> None:
    rt = make_runtime(tmp_path, graph, emulator.url)
    row = account(rt, accounts.CLOUD_API, app_secret="a-meta-app-secret")
    try:
        provider = rt.providers.resolve(accounts.CLOUD_API)
        await provider.ensure_number(
            PhoneNumber(row.phone_number_id, row.waba_id, "15550001111", "Seam test", "s")
        )
        sender = await accounts.sender(rt, row)
        assert graph.paths == []
        assert row.phone_number_id not in emulator_numbers(emulator)
        # The same provider does reach the counting server: the zero above means no call was made.
        await sender.provider.get_phone_number(row.phone_number_id, access_token="t")
        assert graph.paths == [f"GET /v23.0/{row.phone_number_id}"]
    finally:
        await rt.providers.close()


async def test_a_sandbox_account_while_the_emulator_is_off_is_a_422_and_no_call(
    tmp_path: Path, graph: CountingGraph
) -> None:
    rt = make_runtime(tmp_path, graph, "off")
    row = account(rt, accounts.EMULATOR, app_secret="the-numbers-own-secret")
    with pytest.raises(ValidationFailed) as failed:
        await accounts.sender(rt, row)
    assert failed.value.field == "account_id"
    assert "emulator is off" in str(failed.value)
    assert graph.paths == []
    await rt.providers.close()
