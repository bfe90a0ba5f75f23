"""``CloudAPIClient``: the WhatsApp provider over Meta's Graph API, with one pooled aiohttp session.

The bundled emulator speaks the same wire format: ``whatsapp.sandbox.SandboxProvider`` is this
client with the emulator's ``base_url`` and the control call that registers its numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from aisoule.config import Settings
from aisoule.whatsapp.provider import (
    MediaTooLarge,
    MetaAPIError,
    PhoneNumber,
    ProviderOff,
    ProviderUnavailable,
    SendOutcomeUnknown,
    SentMessage,
)

if TYPE_CHECKING:
    from aisoule.whatsapp.provider import WhatsAppProvider

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "v23.0"


# An idle pooled connection is dropped after this long, sooner than servers close theirs (uvicorn's
# default is 5 s, the emulator's too when run elsewhere): a send written onto a connection the
# server has just closed fails with ServerDisconnectedError after the request may have left, so it
# would be marked unknown and never resent (seen in bench.batch against the emulator).
KEEPALIVE_SECONDS = 4.0


class CloudAPIClient:
    """Implements ``WhatsAppProvider``. Create once per process; ``close()`` on shutdown.

    The access token belongs to a WhatsApp account, so it can be given per call; the one given
    here is the default.
    """

    def __init__(
        self,
        *,
        access_token: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        version: str = DEFAULT_VERSION,
        pool_limit: int = 100,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.access_token = access_token
        self.base_url = base_url.rstrip("/")
        self.version = version
        self._pool_limit = pool_limit
        # connect: waiting for a pooled connection or opening one (the request has not left);
        # sock_read: waiting for Meta's answer after the request left.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings, access_token: str | None = None) -> CloudAPIClient:
        return cls(
            access_token=access_token,
            base_url=settings.whatsapp_graph_url,
            version=settings.whatsapp_graph_version,
            pool_limit=settings.whatsapp_http_pool_limit,
            connect_timeout=settings.whatsapp_connect_timeout,
            read_timeout=settings.whatsapp_read_timeout,
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        # Created lazily: an aiohttp session must be made inside the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._pool_limit, keepalive_timeout=KEEPALIVE_SECONDS
                ),
                timeout=self._timeout,
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def ensure_number(self, number: PhoneNumber) -> None:
        """Nothing to do: a number exists at Meta once it is made in Meta's own tools."""

    async def simulate_inbound(
        self, phone_number_id: str, wa_id: str, name: str, text: str
    ) -> None:
        """Meta cannot be made to receive a message: only the sandbox can."""
        raise ProviderOff("only a sandbox number can simulate a customer's message")

    async def _request(
        self,
        method: str,
        path: str,
        *,
        access_token: str | None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        unknown_on_timeout: bool = False,
    ) -> Any:
        token = access_token or self.access_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{self.base_url}/{self.version}/{path.lstrip('/')}"
        try:
            async with self.session.request(
                method, url, json=json, params=params, headers=headers
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise ProviderUnavailable(f"{method} {url}: {exc!r}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The request may have reached Meta: a send must not be repeated blindly.
            if unknown_on_timeout:
                raise SendOutcomeUnknown(f"{method} {url}: {exc!r}") from exc
            raise ProviderUnavailable(f"{method} {url}: {exc!r}") from exc
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        if status >= 400 or (isinstance(body, dict) and "error" in body):
            raise MetaAPIError.from_response(status, body)
        return body

    async def send_message(
        self, phone_number_id: str, payload: dict[str, Any], *, access_token: str | None = None
    ) -> SentMessage:
        body = await self._request(
            "POST",
            f"{phone_number_id}/messages",
            access_token=access_token,
            json={"messaging_product": "whatsapp", **payload},
            unknown_on_timeout=True,
        )
        try:
            message = body["messages"][0]
            contact = (body.get("contacts") or [{}])[0]
            return SentMessage(
                message_id=str(message["id"]),
                wa_id=contact.get("wa_id"),
                input=contact.get("input"),
                message_status=message.get("message_status"),
            )
        except (KeyError, IndexError, TypeError) as exc:
            # Accepted, but we cannot tell which message: the outcome is as unknown as a timeout.
            raise SendOutcomeUnknown(f"unexpected send answer: {body!r}") from exc

    async def mark_read(
        self, phone_number_id: str, message_id: str, *, access_token: str | None = None
    ) -> bool:
        body = await self._request(
            "POST",
            f"{phone_number_id}/messages",
            access_token=access_token,
            json={"messaging_product": "whatsapp", "status": "read", "message_id": message_id},
        )
        return bool(body and body.get("success"))

    async def get_phone_number(
        self, phone_number_id: str, *, access_token: str | None = None
    ) -> dict[str, Any]:
        return dict(await self._request("GET", phone_number_id, access_token=access_token))

    async def list_templates(
        self, waba_id: str, *, access_token: str | None = None, **params: Any
    ) -> list[dict[str, Any]]:
        """All pages of the WABA's templates (``params``: Meta's filters, e.g. ``name``, ``status``)."""
        out: list[dict[str, Any]] = []
        query: dict[str, Any] = {k: str(v) for k, v in params.items()}
        while True:
            body = await self._request(
                "GET", f"{waba_id}/message_templates", access_token=access_token, params=query
            )
            out.extend(body.get("data") or [])
            after = ((body.get("paging") or {}).get("cursors") or {}).get("after")
            if not after or not (body.get("paging") or {}).get("next"):
                return out
            query = {**query, "after": after}

    async def create_template(
        self, waba_id: str, template: dict[str, Any], *, access_token: str | None = None
    ) -> dict[str, Any]:
        """Submit a template; Meta answers ``{"id", "status", "category"}``."""
        return dict(
            await self._request(
                "POST", f"{waba_id}/message_templates", access_token=access_token, json=template
            )
        )

    async def delete_template(
        self,
        waba_id: str,
        name: str,
        *,
        hsm_id: str | None = None,
        access_token: str | None = None,
    ) -> bool:
        """Delete by name (every language), or one language's template with ``hsm_id``."""
        params = {"name": name, **({"hsm_id": hsm_id} if hsm_id else {})}
        body = await self._request(
            "DELETE", f"{waba_id}/message_templates", access_token=access_token, params=params
        )
        return bool(body and body.get("success"))

    async def upload_media(
        self,
        phone_number_id: str,
        data: bytes,
        mime_type: str,
        filename: str = "file",
        *,
        access_token: str | None = None,
    ) -> str:
        """Upload media for later sends; answers Meta's media id."""
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime_type)
        form.add_field("file", data, content_type=mime_type, filename=filename)
        token = access_token or self.access_token
        url = f"{self.base_url}/{self.version}/{phone_number_id}/media"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self.session.post(url, data=form, headers=headers) as resp:
                body = await resp.json(loads=orjson.loads, content_type=None)
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ProviderUnavailable(f"POST {url}: {exc!r}") from exc
        if status >= 400:
            raise MetaAPIError.from_response(status, body)
        return str(body["id"])

    async def download_media(
        self,
        media_id: str,
        *,
        max_bytes: int,
        phone_number_id: str | None = None,
        access_token: str | None = None,
    ) -> tuple[bytes, str]:
        """Meta's two steps: the media node (its URL, valid 5 minutes, and its type), then the
        URL with the same bearer token; read at most ``max_bytes``."""
        params = {"phone_number_id": phone_number_id} if phone_number_id else None
        node = await self._request("GET", media_id, access_token=access_token, params=params)
        url = node.get("url") if isinstance(node, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise MetaAPIError.from_response(502, {"error": {"message": "no media URL"}})
        mime = str(node.get("mime_type") or "application/octet-stream")
        token = access_token or self.access_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        chunks: list[bytes] = []
        size = 0
        try:
            async with self.session.get(url, headers=headers) as resp:
                if resp.status >= 400:
                    raise MetaAPIError.from_response(resp.status, None)
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaTooLarge(f"media {media_id} is over {max_bytes} bytes")
                    chunks.append(chunk)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ProviderUnavailable(f"GET media {media_id}: {exc!r}") from exc
        return b"".join(chunks), mime


if TYPE_CHECKING:  # mypy checks that the client satisfies the interface
    _provider: WhatsAppProvider = CloudAPIClient()
