"""An independent client, pywa, against the emulator: its sends and its webhook parsing agree.

pywa has no base-URL setting (it sets ``https://graph.facebook.com/v<version>`` on the httpx
client it is given), so the test hands it an httpx client whose transport rewrites that host.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import httpx
import pytest

from tests.whatsapp.conftest import APP_SECRET, PHONE_ID, TOKEN, WABA_ID, Emulator, Receiver

pywa = pytest.importorskip("pywa")
from pywa import WhatsApp, handlers, types  # noqa: E402
from pywa.types.templates import BodyText, TemplateLanguage  # noqa: E402

CUSTOMER = "15551234567"


class ToEmulator(httpx.HTTPTransport):
    """Sends graph.facebook.com requests to the emulator instead."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base = httpx.URL(base_url)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self.base.scheme, host=self.base.host, port=self.base.port
        )
        return super().handle_request(request)


def make_wa(emulator: Emulator) -> WhatsApp:
    return WhatsApp(
        phone_id=PHONE_ID,
        token=TOKEN,
        waba_id=WABA_ID,
        app_secret=APP_SECRET,
        api_version="23.0",
        session=httpx.Client(transport=ToEmulator(emulator.url), timeout=10),
    )


def test_pywa_sends_text_and_template(emulator: Emulator) -> None:
    wa = make_wa(emulator)
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    sent = wa.send_message(to=CUSTOMER, text="Hello from pywa")
    assert sent.id.startswith("wamid.")
    with httpx.Client(base_url=emulator.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        r = c.post(
            f"/v23.0/{WABA_ID}/message_templates",
            json={
                "name": "order_update",
                "language": "en_US",
                "category": "UTILITY",
                "components": [
                    {
                        "type": "BODY",
                        "text": "Hi {{1}}, order {{2}} has shipped.",
                        "example": {"body_text": [["Asha", "#1042"]]},
                    }
                ],
            },
        )
        assert r.status_code == 200, r.text
    time.sleep(0.5)  # approval delay (0.3 s in these tests)
    sent_tpl = wa.send_template(
        to=CUSTOMER,
        name="order_update",
        language=TemplateLanguage.ENGLISH_US,
        params=[BodyText.params("Asha", "#1042")],
    )
    assert sent_tpl.id.startswith("wamid.")
    kinds = [m["type"] for m in emulator.sent(CUSTOMER)]
    assert kinds == ["text", "template"]
    # pywa's error parsing of the emulator's error JSON.
    with pytest.raises(pywa.errors.TemplateParamCountMismatch) as info:
        wa.send_template(
            to=CUSTOMER,
            name="order_update",
            language=TemplateLanguage.ENGLISH_US,
            params=[BodyText.params("Asha")],
        )
    assert info.value.code == 132000 and info.value.details


def test_pywa_parses_emulator_webhooks(
    emulator: Emulator, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    wa = make_wa(emulator)
    got: list[Any] = []
    wa.add_handlers(
        handlers.MessageHandler(lambda _, m: got.append(m)),
        handlers.CallbackButtonHandler(lambda _, b: got.append(b)),
        handlers.CallbackSelectionHandler(lambda _, s: got.append(s)),
        handlers.MessageStatusHandler(lambda _, s: got.append(s)),
    )
    emulator.inbound(**{"from": CUSTOMER, "name": "Asha", "text": "Where is my order?"})
    emulator.inbound(
        **{"from": CUSTOMER, "type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}
    )
    emulator.inbound(
        **{"from": CUSTOMER, "type": "list_reply", "list_reply": {"id": "r1", "title": "Row 1"}}
    )
    emulator.inbound(
        **{
            "from": CUSTOMER,
            "type": "image",
            "media": {"mime_type": "image/png", "caption": "receipt"},
        }
    )
    wa.send_message(to=CUSTOMER, text="On its way")
    hooks = receiver.wait(lambda hs: len(hs) >= 7)  # 4 inbound + sent, delivered, read
    for h in hooks:
        assert wa.webhook_update_validator(h.raw, h.headers["x-hub-signature-256"]) is None
        assert wa.webhook_update_handler(h.raw) == ("ok", 200)
    # pywa logs (and swallows) any update it fails to construct: there must be none.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert wa.webhook_update_validator(b"{}", hooks[0].headers["x-hub-signature-256"]) is not None

    messages = [u for u in got if isinstance(u, types.Message)]
    assert {m.text for m in messages if m.text} >= {"Where is my order?"}
    assert any(m.image is not None and m.caption == "receipt" for m in messages)
    assert messages[0].from_user.name == "Asha" and messages[0].from_user.wa_id == CUSTOMER
    assert [b.data for b in got if isinstance(b, types.CallbackButton)] == ["yes"]
    assert [s.data for s in got if isinstance(s, types.CallbackSelection)] == ["r1"]
    statuses = [u.status.value for u in got if isinstance(u, types.MessageStatus)]
    assert sorted(statuses) == ["delivered", "read", "sent"]


def test_pywa_media_contacts_and_paused_templates(emulator: Emulator) -> None:
    """pywa's own media, contacts and template-error code paths read the emulator's answers."""
    wa = make_wa(emulator)
    emulator.inbound(**{"from": CUSTOMER, "text": "hi"})
    data = b"\x89PNG fake image"
    media = wa.upload_media(media=data, mime_type="image/png", filename="a.png")
    url = wa.get_media_url(media.id)
    assert (url.id, url.mime_type, url.file_size) == (media.id, "image/png", len(data))
    assert url.sha256 == hashlib.sha256(data).hexdigest()
    assert wa.delete_media(media.id, phone_id=None).success
    with pytest.raises(pywa.errors.WhatsAppError) as gone:
        wa.get_media_url(media.id)
    assert gone.value.code == 100
    card = types.Contact(
        name=types.Contact.Name(formatted_name="Asha Rao", first_name="Asha"),
        phones=[types.Contact.Phone(phone="+15551234567", type="WORK", wa_id=CUSTOMER)],
    )
    assert wa.send_contact(to=CUSTOMER, contact=card).id.startswith("wamid.")
    with httpx.Client(base_url=emulator.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        created = c.post(
            f"/v23.0/{WABA_ID}/message_templates",
            json={
                "name": "promo",
                "language": "en_US",
                "category": "MARKETING",
                "components": [{"type": "BODY", "text": "Sale today"}],
            },
        ).json()
        deadline = time.monotonic() + 10
        while (
            c.get(f"/v23.0/{WABA_ID}/message_templates", params={"name": "promo"}).json()["data"][
                0
            ]["status"]
            != "APPROVED"
        ):
            assert time.monotonic() < deadline, "the template was not approved"
            time.sleep(0.05)
    for status, error in (
        ("PAUSED", pywa.errors.TemplatePaused),
        ("DISABLED", pywa.errors.TemplateDisabled),
    ):
        with httpx.Client(base_url=emulator.url) as c:
            forced = c.post(f"/_emulator/templates/{created['id']}/status", json={"status": status})
            assert forced.status_code == 200
        with pytest.raises(error):
            wa.send_template(to=CUSTOMER, name="promo", language=TemplateLanguage.ENGLISH_US)
