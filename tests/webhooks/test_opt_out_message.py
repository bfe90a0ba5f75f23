"""The refusal to send to an opted-out contact says how they opt back in, and it is true: writing
again does not (only START and its synonyms do, see START_WORDS in
aisoule/whatsapp/inbound/keywords.py)."""

from __future__ import annotations

import time

import httpx

from tests.conftest import Workspace
from tests.webhooks.test_inbound import (
    inbound,
    inbound_messages,
    new_wa_id,
    post_signed,
    sandbox,
    send_text,
    wait_for,
)


def test_the_opt_out_refusal_names_start_and_only_start_opts_back_in(
    ws: Workspace, anon: httpx.Client
) -> None:
    account = sandbox(ws)
    wa_id = new_wa_id()
    phone = "+" + wa_id
    now = int(time.time())
    with ws.client() as api:
        assert post_signed(anon, inbound(account, wa_id, "STOP", ts=now - 2)).status_code == 200
        # Before the STOP is applied a send is refused too (no 24-hour window yet): wait for the
        # opt-out's own refusal.
        wait_for(
            lambda: send_text(api, phone).json().get("code") == "contact_opted_out",
            what="the opt-out",
        )
        r = send_text(api, phone)
        assert r.json()["code"] == "contact_opted_out", r.text
        message = r.json()["message"]
        assert "until they reply START" in message, message
        assert "write to you again" not in message, message

        # They write again, but not START: still opted out, as the message says.
        assert post_signed(anon, inbound(account, wa_id, "hello?", ts=now - 1)).status_code == 200
        wait_for(lambda: len(inbound_messages(api, phone)) == 2, what="the second message")
        r = send_text(api, phone)
        assert r.status_code == 422 and r.json()["code"] == "contact_opted_out", r.text

        assert post_signed(anon, inbound(account, wa_id, "START", ts=now)).status_code == 200
        wait_for(lambda: send_text(api, phone).status_code == 202, what="the opt-in")
